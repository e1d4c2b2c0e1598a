"""Flow-run names that ops can read in the Prefect UI: ``refresh-2026-11-21-default``."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path


def run_name(flow: str, config: str | None) -> str:
    stem = Path(config).stem if config else "default"
    stem = re.sub(r"[^a-z0-9-]+", "-", stem.lower()).strip("-") or "config"
    return f"{flow}-{datetime.now(UTC):%Y-%m-%d-%H%M%S}-{stem}"


def flow_run_namer(flow: str):
    """A ``flow_run_name`` callable reading the run's ``config`` parameter."""

    def name() -> str:
        from prefect.runtime import flow_run

        return run_name(flow, flow_run.parameters.get("config"))

    return name
