"""faqforge: documents in, a validated QA dataset and a fine-tuned FAQ model out.

The package holds what every stage shares: records, configuration, storage and the CLI.
Stages live in ``tasks/``, their wiring in ``flows/``.
"""

__version__ = "0.1.0"
