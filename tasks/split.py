"""Split: train/eval by source document, with the published eval split frozen.

The hash rule: a document's sha256 of ``(cfg.salt, doc_id)`` read as a number in [0, 1) sends
it to eval when below ``cfg.eval_fraction``; adding or removing other documents never moves it.

Against a frozen eval split (``tasks/eval_registry.py``; every refresh after the first, unless
``--new-eval``):
- its eval items are kept verbatim, also when their document changed or disappeared
  (``carried_eval`` counts those no longer generated), so scores stay comparable;
- a document with eval items stays in eval; its pairs that are not frozen items (the document
  changed) are dropped as ``frozen_eval_doc``: in train they would leak, in eval they would
  change the eval set. ``--new-eval`` takes them in;
- a document recorded in train stays in train;
- only new documents follow the hash rule, so they may add eval items but never move any.
Both sides are made non-empty by moving the new document nearest the boundary. Not covered:
stratifying by topic or balancing pair counts (a long document weighs more than a short one).
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task

from faqforge.config import SplitConfig
from faqforge.records import QAPair, Rejection
from faqforge.stage import StageCounts, StageOutput
from faqforge.storage import Workspace
from faqforge.tasking import run_stage, stage_cache_key_fn
from tasks.eval_registry import FrozenEval, eval_version_id, load_frozen

STAGE = "split"


def doc_position(doc_id: str, salt: str) -> float:
    """Where a document falls in [0, 1): ``int(sha256(salt + doc_id)) / 2**256``."""
    return int(hashlib.sha256((salt + doc_id).encode()).hexdigest(), 16) / 2**256


def eval_docs(doc_ids: list[str], cfg: SplitConfig, frozen: FrozenEval | None = None) -> set[str]:
    """The documents whose current pairs go to eval; frozen documents keep their side.

    Both sides non-empty whenever there are ≥ 2 documents (frozen items count as eval).
    """
    known = (frozen.eval_docs | frozen.train_docs) if frozen else frozenset()
    new = sorted(set(doc_ids) - known, key=lambda d: (doc_position(d, cfg.salt), d))
    chosen = {d for d in new if doc_position(d, cfg.salt) < cfg.eval_fraction}
    kept_eval = set(doc_ids) & (frozen.eval_docs if frozen else frozenset())
    n_docs = len(set(doc_ids) | (frozen.eval_docs if frozen else frozenset()))
    has_eval = bool(chosen) or bool(frozen and frozen.items)
    has_train = bool(set(doc_ids) - kept_eval - chosen)
    if n_docs >= 2 and not has_eval and new:
        chosen = {new[0]}  # the new document closest to falling into eval anyway
    elif n_docs >= 2 and not has_train and chosen:
        chosen.discard(max(chosen, key=lambda d: (doc_position(d, cfg.salt), d)))
    return kept_eval | chosen


@dataclass
class Split:
    """The two sides, pairs dropped to keep eval frozen, and what the registry will record."""

    train: list[QAPair]
    eval: list[QAPair]
    rejected: list[Rejection]
    carried: int  # frozen eval items not among this run's pairs (their chunk changed or left)
    train_docs: list[str]


def split_pairs(pairs: list[QAPair], cfg: SplitConfig, frozen: FrozenEval | None = None) -> Split:
    """Train in input order; eval = frozen items, then new eval documents' pairs."""
    to_eval = eval_docs([p.doc_id for p in pairs], cfg, frozen)
    frozen_ids = {p.id for p in frozen.items} if frozen else set()
    frozen_docs = frozen.eval_docs if frozen else frozenset()
    train = [p for p in pairs if p.doc_id not in to_eval]
    fresh = [p for p in pairs if p.doc_id in to_eval and p.doc_id not in frozen_docs]
    stale = [p for p in pairs if p.doc_id in frozen_docs and p.id not in frozen_ids]
    rejected = [
        Rejection(
            record_id=p.id,
            stage=STAGE,
            reason="frozen_eval_doc",
            detail=f"document {p.doc_id} is in frozen eval {frozen.version}; --new-eval takes "
            "its new pairs in",
            record=p.to_dict(),
        )
        for p in stale
        if frozen
    ]
    current_ids = {p.id for p in pairs}
    items = frozen.items if frozen else []
    carried = sum(p.id not in current_ids for p in items)
    train_docs = sorted({p.doc_id for p in train} | (frozen.train_docs if frozen else set()))
    return Split(train, [*items, *fresh], rejected, carried, train_docs)


def split_stats(result: Split, frozen: FrozenEval | None) -> dict[str, Any]:
    version = eval_version_id(result.eval)
    return {
        "train": len(result.train),
        "eval": len(result.eval),
        "train_docs": len({p.doc_id for p in result.train}),
        "eval_docs": len({p.doc_id for p in result.eval}),
        "carried_eval": result.carried,
        "eval_version": version,
        # The frozen version this one extends (equal when no new eval document came in).
        "eval_parent": frozen.version if frozen else None,
    }


@task(
    name="split",
    cache_key_fn=stage_cache_key_fn(STAGE, sys.modules[__name__]),
    persist_result=True,
    result_serializer="json",
)
def split(
    pairs: StageOutput, cfg: SplitConfig, workspace: str, frozen: dict[str, Any] | None = None
) -> StageOutput:
    """``train``, ``eval``, ``rejections`` and ``train_docs`` (kept in train by the registry).

    ``frozen`` is ``eval_registry.frozen_state``: None splits afresh by the hash rule.
    Counts: frozen items read from the registry enter alongside this run's pairs.
    """

    def compute():
        items = pairs.read("pairs", QAPair)
        held = load_frozen(Workspace(Path(workspace)), frozen)
        result = split_pairs(items, cfg, held)
        n_out = len(result.train) + len(result.eval)
        counts = StageCounts.of(len(items) + result.carried, n_out, result.rejected)
        outputs = {
            "train": result.train,
            "eval": result.eval,
            "rejections": result.rejected,
            "train_docs": [{"doc_id": d} for d in result.train_docs],
        }
        return outputs, counts, split_stats(result, held)

    params = {"pairs": pairs, "cfg": cfg, "workspace": workspace, "frozen": frozen}
    return run_stage(STAGE, sys.modules[__name__], params, compute)
