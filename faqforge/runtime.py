"""Process environment for running flows: the CLI sets it before Prefect is imported, and
each flow again when it runs (a worker imports a flow without the CLI). Never on import.

Only defaults are set (``setdefault``): anything the operator exported wins.
"""

from __future__ import annotations

import os


def prepare_environment() -> None:
    # No telemetry (it fails and logs offline); the first ephemeral start can take ~20 s.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The SDK's own telemetry and its first-run notice on a terminal: Prefect documents the
    # DO_NOT_TRACK standard as the switch (read when prefect is imported).
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    # Nothing is downloaded at run time: models are local paths or already cached.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # A stored result is read back on a cache hit: JSON, never a pickle that reading would
    # execute (Prefect's default is pickle). Tasks that persist also say so themselves.
    os.environ.setdefault("PREFECT_RESULTS_DEFAULT_SERIALIZER", "json")
