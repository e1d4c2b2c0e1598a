"""Token and cost ledger: one row per model request, summed per stage, document and run.

Tokens come from each response's ``usage``; cached replies cost nothing this run. The
optional ``teacher.token_budget`` is shared by generate and judge: once it is spent no new
request is sent, and each stage reports how many of its items were ``left``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from faqforge.config import TeacherConfig
from faqforge.records import Chunk
from faqforge.teachers.base import Usage

TOTALS = ("requests", "prompt_tokens", "completion_tokens", "cost")


@dataclass(frozen=True)
class LedgerRow:
    stage: str
    doc_id: str
    source: str
    chunk_id: str
    attempt: int
    prompt_tokens: int
    completion_tokens: int
    cost: float


class Budget:
    """Tokens this run may still spend; ``Budget(None)`` never runs out."""

    def __init__(self, limit: int | None, spent: int = 0):
        self.limit = limit
        self.spent = spent

    def allows(self) -> bool:
        return self.limit is None or self.spent < self.limit

    def spend(self, usage: Usage) -> None:
        self.spent += usage.total


def _add(into: dict[str, Any], row: dict[str, Any]) -> None:
    for k in TOTALS:
        into[k] = into.get(k, 0) + row.get(k, 0)
    into["cost"] = round(into["cost"], 6)


class Ledger:
    """``ledger.add(chunk, reply.calls)`` per chunk sent; ``summary()`` for stats."""

    def __init__(self, stage: str, cfg: TeacherConfig):
        self.stage = stage
        self.cfg = cfg
        self.rows: list[LedgerRow] = []
        self.left = 0

    def cost(self, usage: Usage) -> float:
        cfg = self.cfg
        per_token = usage.prompt_tokens * cfg.cost_per_mtok_prompt
        return (per_token + usage.completion_tokens * cfg.cost_per_mtok_completion) / 1e6

    def add(self, chunk: Chunk, calls: Sequence[Usage]) -> None:
        for attempt, u in enumerate(calls):
            self.rows.append(
                LedgerRow(
                    self.stage,
                    chunk.doc_id,
                    chunk.source,
                    chunk.chunk_id,
                    attempt,
                    u.prompt_tokens,
                    u.completion_tokens,
                    self.cost(u),
                )
            )

    def summary(self) -> dict[str, Any]:
        """Totals of this stage and per source document, plus what the budget left."""
        total: dict[str, Any] = dict.fromkeys(TOTALS, 0)
        by_document: dict[str, dict[str, Any]] = {}
        for row in self.rows:
            data = {**asdict(row), "requests": 1}
            _add(total, data)
            _add(by_document.setdefault(row.source, {}), data)
        return {**total, "left": self.left, "by_document": by_document}

    def dicts(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.rows]


def run_ledger(stage_ledgers: dict[str, dict[str, Any]], budget: int | None) -> dict[str, Any]:
    """``{"stages": ..., "by_document": ..., "run": ..., "token_budget", "left"}`` of a run."""
    run: dict[str, Any] = dict.fromkeys(TOTALS, 0)
    by_document: dict[str, dict[str, Any]] = {}
    stages = {}
    for stage, summary in stage_ledgers.items():
        stages[stage] = {k: summary[k] for k in (*TOTALS, "left")}
        _add(run, summary)
        for source, totals in summary["by_document"].items():
            _add(by_document.setdefault(source, {}), totals)
    left = {stage: s["left"] for stage, s in stages.items()}
    return {"stages": stages, "by_document": by_document, "run": run,
            "token_budget": budget, "left": left}  # fmt: skip


def ledger_table(ledger: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for a Prefect table artifact: the run, each stage, each document."""

    def row(scope: str, name: str, totals: dict[str, Any], left: Any = "") -> dict[str, Any]:
        return {"scope": scope, "name": name, **{k: totals[k] for k in TOTALS}, "left": left}

    budget = ledger["token_budget"]
    rows = [row("run", f"budget {budget}" if budget else "no budget", ledger["run"],
                sum(ledger["left"].values()))]  # fmt: skip
    rows += [row("stage", s, t, t["left"]) for s, t in ledger["stages"].items()]
    rows += [row("document", d, t) for d, t in sorted(ledger["by_document"].items())]
    return rows
