"""Split: train/eval by source document, so no document's facts leak from train into eval.

A document's side is a pure function of ``(cfg.salt, doc_id)``: its sha256 read as a number in
[0, 1) goes to eval when below ``cfg.eval_fraction``. Adding or removing other documents never
moves a document, and changing the salt reshuffles all of them. With two or more documents
both sides are made non-empty by moving the one document nearest the boundary. Not covered:
stratifying by topic or balancing pair counts (a long document weighs more than a short one).
"""

from __future__ import annotations

import hashlib
import sys

from prefect import task

from faqforge.config import SplitConfig
from faqforge.records import QAPair
from faqforge.stage import StageCounts, StageOutput
from faqforge.tasking import run_stage, stage_cache_key_fn

STAGE = "split"


def doc_position(doc_id: str, salt: str) -> float:
    """Where a document falls in [0, 1): ``int(sha256(salt + doc_id)) / 2**256``."""
    return int(hashlib.sha256((salt + doc_id).encode()).hexdigest(), 16) / 2**256


def eval_docs(doc_ids: list[str], cfg: SplitConfig) -> set[str]:
    """The documents that go to eval; both sides non-empty whenever there are ≥ 2 documents."""
    ranked = sorted(set(doc_ids), key=lambda d: (doc_position(d, cfg.salt), d))
    chosen = {d for d in ranked if doc_position(d, cfg.salt) < cfg.eval_fraction}
    if len(ranked) >= 2 and not chosen:
        chosen = {ranked[0]}  # the document closest to falling into eval anyway
    elif len(ranked) >= 2 and len(chosen) == len(ranked):
        chosen.discard(ranked[-1])  # the document closest to falling into train anyway
    return chosen


def split_pairs(pairs: list[QAPair], cfg: SplitConfig) -> tuple[list[QAPair], list[QAPair]]:
    """``(train, eval)`` in input order, every document's pairs on exactly one side."""
    to_eval = eval_docs([p.doc_id for p in pairs], cfg)
    train = [p for p in pairs if p.doc_id not in to_eval]
    evals = [p for p in pairs if p.doc_id in to_eval]
    return train, evals


def split_stats(train: list[QAPair], evals: list[QAPair]) -> dict[str, int]:
    return {
        "train": len(train),
        "eval": len(evals),
        "train_docs": len({p.doc_id for p in train}),
        "eval_docs": len({p.doc_id for p in evals}),
    }


@task(
    name="split",
    cache_key_fn=stage_cache_key_fn(STAGE, sys.modules[__name__]),
    persist_result=True,
    result_serializer="json",
)
def split(pairs: StageOutput, cfg: SplitConfig, workspace: str) -> StageOutput:
    """The dataset's two sides, ``train`` and ``eval``; nothing is dropped here."""

    def compute():
        items = pairs.read("pairs", QAPair)
        train, evals = split_pairs(items, cfg)
        counts = StageCounts.of(len(items), len(train) + len(evals), [])
        return {"train": train, "eval": evals}, counts, split_stats(train, evals)

    params = {"pairs": pairs, "cfg": cfg, "workspace": workspace}
    return run_stage(STAGE, sys.modules[__name__], params, compute)
