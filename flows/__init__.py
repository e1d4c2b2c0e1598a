"""Prefect flows: each only wires tasks from ``tasks/``. Importing them changes nothing:
each flow prepares the process environment (``faqforge.runtime``) when it runs."""
