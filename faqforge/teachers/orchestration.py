"""The Prefect side of teacher traffic: shared global limits, the ledger file and artifact.

Kept out of the pure stage code: ``fanout.fan_out`` takes a ``slot`` context and a
``Ledger``; the ``@task`` entry points (generate, judge) wire them to Prefect here.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from faqforge.artifacts import artifact_key
from faqforge.config import TeacherConfig
from faqforge.storage import Workspace, write_jsonl
from faqforge.tasking import in_prefect_run
from faqforge.teachers.ledger import Ledger, ledger_table

Slot = Callable[[], AbstractAsyncContextManager[Any]]


def prefect_slot(cfg: TeacherConfig) -> Slot | None:
    """The Prefect global limits named in config, as one context entered per request.

    ``strict``: a limit named but not created is an error, not a silent free-for-all.
    """
    if not (cfg.concurrency_limit or cfg.rate_limit):
        return None
    from prefect.concurrency.asyncio import concurrency, rate_limit

    @asynccontextmanager
    async def slot():
        if cfg.rate_limit:
            await rate_limit(cfg.rate_limit, strict=True)
        if cfg.concurrency_limit:
            async with concurrency(cfg.concurrency_limit, strict=True):
                yield
        else:
            yield

    return slot


def write_ledger(ws: Workspace, ledger: Ledger) -> str:
    """Per-request rows of this run under ``ledger/`` (a spend history beside the cache)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = ws.root / "ledger" / f"{stamp}-{ledger.stage}.jsonl"
    write_jsonl(path, ledger.dicts())
    return str(path)


def publish_ledger_artifact(ledger: dict[str, Any], ws: Workspace) -> None:
    if in_prefect_run():
        from prefect.artifacts import create_table_artifact

        create_table_artifact(
            key=artifact_key("teacher-ledger", ws),
            table=ledger_table(ledger),
            description="teacher tokens and cost this run: per run, stage and document",
        )
