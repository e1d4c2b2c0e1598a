"""Flow-run names that ops can read in the Prefect UI:
``refresh-2026-11-21-020000-default-sample-corpus`` (flow, UTC time, config, corpus folder),
so two corpora refreshed with one config do not look alike."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _slug(text: str, fallback: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:40] or fallback


def run_name(flow: str, config: str | None, corpus: str | None = None) -> str:
    stem = _slug(Path(config).stem if config else "default", "config")
    where = f"-{_slug(Path(corpus).name, 'corpus')}" if corpus else ""
    return f"{flow}-{datetime.now(UTC):%Y-%m-%d-%H%M%S}-{stem}{where}"


def corpus_of(parameters: dict[str, Any]) -> str | None:
    """The run's corpus: its ``source`` parameter, else the resolved config's (None when the
    config cannot be read: the run itself reports why)."""
    if parameters.get("source"):
        return str(parameters["source"])
    from faqforge.config import ConfigError, load_run_config

    try:
        cfg = load_run_config(parameters.get("config"), parameters.get("overrides"), None,
                              parameters.get("workspace"))  # fmt: skip
    except (ConfigError, OSError):
        return None
    return str(cfg.source)


def flow_run_namer(flow: str):
    """A ``flow_run_name`` callable reading the run's ``config`` and corpus parameters."""

    def name() -> str:
        from prefect.runtime import flow_run

        params = flow_run.parameters
        return run_name(flow, params.get("config"), corpus_of(params))

    return name
