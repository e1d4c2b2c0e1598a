"""Split: train, and the eval probes that say what the tuned model learned, frozen once published.

Two probes (``records.EvalItem``), reported separately by evaluation:

- ``knowledge`` (the headline): held-out *phrasings* of facts the student trains on. Of the
  facts in training documents that the teacher asked two or more ways, a share
  (``cfg.knowledge_fraction``, by a hash of the fact id) has one phrasing held out: the one
  whose question shares the fewest word pairs with its siblings'. The other phrasings stay in
  train, and the item names them (``taught_by``; decontaminate fills in which survived).
  What is held out is the wording, not the fact: a closed-book model can only answer it if
  fine-tuning taught it the fact.
- ``unseen_documents``: whole documents held out (the hash rule below), one question per fact
  (the other phrasings are dropped as ``unseen_extra_phrasing``). A closed-book model cannot
  know these answers: the probe measures abstention, and how much of any gain is style alone.

The hash rule: a document's sha256 of ``(cfg.salt, doc_id)`` read as a number in [0, 1) sends
it to unseen_documents when below ``cfg.eval_fraction``; adding or removing other documents
never moves it. Facts are sampled the same way, on ``(cfg.salt, fact_id)``.

Against a frozen eval split (``tasks/split_registry.py``; every refresh after the first, unless
``--new-eval``):
- its items are kept verbatim, also when their document changed or disappeared
  (``carried_eval`` counts those no longer generated), so scores stay comparable;
- a document with unseen_documents items stays held out; its pairs that are not frozen items
  are dropped: other phrasings of a fact it asks as ``unseen_extra_phrasing`` (as in a fresh
  split), new pairs (the document changed) as ``frozen_eval_doc``: in train they would leak, in
  eval they would change the eval set. ``--new-eval`` takes them in;
- a fact with a frozen knowledge item keeps it and holds out nothing else;
- a document recorded in train stays in train;
- only new documents follow the document rule, and only facts not seen before can add
  knowledge items, so a refresh may add eval items but never moves any.
Both sides are made non-empty by moving the new document nearest the boundary. Not covered:
stratifying by topic or balancing pair counts (a long document weighs more than a short one).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from faqforge.config import SplitConfig
from faqforge.records import KNOWLEDGE, UNSEEN_DOCUMENTS, EvalItem, QAPair, Rejection
from faqforge.stage import StageCounts, StageOutput
from faqforge.storage import Workspace
from faqforge.tasking import Computed, stage
from tasks.split_registry import FrozenEval, eval_version_id, load_frozen
from tasks.text import jaccard, shingles

STAGE = "split"


def position(key: str, salt: str) -> float:
    """Where a document or fact falls in [0, 1): ``int(sha256(salt + key)) / 2**256``."""
    return int(hashlib.sha256((salt + key).encode()).hexdigest(), 16) / 2**256


def eval_docs(doc_ids: list[str], cfg: SplitConfig, frozen: FrozenEval | None = None) -> set[str]:
    """The documents held out whole (unseen_documents); frozen documents keep their side.

    Both sides non-empty whenever there are ≥ 2 documents (frozen items count as eval).
    """
    known = (frozen.eval_docs | frozen.train_docs) if frozen else frozenset()
    new = sorted(set(doc_ids) - known, key=lambda d: (position(d, cfg.salt), d))
    chosen = {d for d in new if position(d, cfg.salt) < cfg.eval_fraction}
    kept_eval = set(doc_ids) & (frozen.eval_docs if frozen else frozenset())
    n_docs = len(set(doc_ids) | (frozen.eval_docs if frozen else frozenset()))
    has_eval = bool(chosen) or bool(frozen and frozen.items)
    has_train = bool(set(doc_ids) - kept_eval - chosen)
    if n_docs >= 2 and not has_eval and new:
        chosen = {new[0]}  # the new document closest to falling into eval anyway
    elif n_docs >= 2 and not has_train and chosen:
        chosen.discard(max(chosen, key=lambda d: (position(d, cfg.salt), d)))
    return kept_eval | chosen


def by_fact(pairs: list[QAPair]) -> dict[str, list[QAPair]]:
    """Pairs grouped by fact, in input order; a pair without a fact id is a fact of its own."""
    groups: dict[str, list[QAPair]] = defaultdict(list)
    for p in pairs:
        groups[p.fact_id or p.id].append(p)
    return groups


def most_distinct(phrasings: list[QAPair], salt: str) -> QAPair:
    """The phrasing whose question shares the fewest word pairs with its siblings' (ties: hash).

    Holding that one out leaves training questions as unlike the probe's as the teacher wrote.
    """
    sets = {p.id: shingles(p.question) for p in phrasings}

    def closest_sibling(p: QAPair) -> float:
        return max(jaccard(sets[p.id], sets[o.id]) for o in phrasings if o.id != p.id)

    return min(phrasings, key=lambda p: (closest_sibling(p), position(p.id, salt)))


def hold_out_phrasings(
    pool: list[QAPair], cfg: SplitConfig, held_facts: frozenset[str]
) -> tuple[list[QAPair], list[EvalItem]]:
    """``(train, knowledge items)``: one phrasing of each sampled fact moves to the probe.

    A fact is eligible when asked two or more ways and not already held by a frozen item.
    """
    held: dict[str, EvalItem] = {}
    for fact, phrasings in by_fact(pool).items():
        if len(phrasings) < 2 or fact in held_facts:
            continue
        if position(fact, cfg.salt) >= cfg.knowledge_fraction:
            continue
        out = most_distinct(phrasings, cfg.salt)
        taught_by = [p.id for p in phrasings if p.id != out.id]
        held[out.id] = EvalItem(**out.to_dict(), probe=KNOWLEDGE, taught_by=taught_by)
    train = [p for p in pool if p.id not in held]
    return train, [held[p.id] for p in pool if p.id in held]


def extra_phrasing(p: QAPair, asked_as: str) -> Rejection:
    return Rejection(
        record_id=p.id,
        stage=STAGE,
        reason="unseen_extra_phrasing",
        detail=f"the unseen-documents probe asks fact {p.fact_id} once, as {asked_as}",
        record=p.to_dict(),
    )


def one_per_fact(pairs: list[QAPair]) -> tuple[list[EvalItem], list[Rejection]]:
    """Unseen-documents items, the first phrasing of each fact; the others as rejections."""
    items, rejected = [], []
    for phrasings in by_fact(pairs).values():
        first, *rest = phrasings
        items.append(EvalItem(**first.to_dict(), probe=UNSEEN_DOCUMENTS))
        rejected += [extra_phrasing(p, first.id) for p in rest]
    order = {p.id: i for i, p in enumerate(pairs)}
    return sorted(items, key=lambda p: order[p.id]), rejected


def stale_rejections(stale: list[QAPair], frozen: FrozenEval) -> list[Rejection]:
    """Pairs of a frozen eval document that are not its items. Another phrasing of a fact
    the probe already asks is rejected as in a fresh split, so re-running against the
    version a run just froze changes nothing; any other pair is new (the document changed).
    """
    asked = {p.fact_id: p.id for p in frozen.items if p.probe == UNSEEN_DOCUMENTS and p.fact_id}
    return [
        extra_phrasing(p, asked[p.fact_id])
        if p.fact_id in asked
        else Rejection(
            record_id=p.id,
            stage=STAGE,
            reason="frozen_eval_doc",
            detail=f"document {p.doc_id} is in frozen eval {frozen.version}; --new-eval takes "
            "its new pairs in",
            record=p.to_dict(),
        )
        for p in stale
    ]


@dataclass
class Split:
    """Train, the eval items of both probes, pairs dropped, and what the registry records."""

    train: list[QAPair]
    eval: list[EvalItem]
    rejected: list[Rejection]
    carried: int  # frozen eval items not among this run's pairs (their chunk changed or left)
    train_docs: list[str]


def split_pairs(pairs: list[QAPair], cfg: SplitConfig, frozen: FrozenEval | None = None) -> Split:
    """Train in input order; eval = frozen items, new knowledge items, new unseen items."""
    to_eval = eval_docs([p.doc_id for p in pairs], cfg, frozen)
    items = frozen.items if frozen else []
    frozen_ids = {p.id for p in items}
    frozen_docs = frozen.eval_docs if frozen else frozenset()
    pool = [p for p in pairs if p.doc_id not in to_eval and p.id not in frozen_ids]
    fresh = [p for p in pairs if p.doc_id in to_eval and p.doc_id not in frozen_docs]
    stale = [p for p in pairs if p.doc_id in frozen_docs and p.id not in frozen_ids]
    rejected = stale_rejections(stale, frozen) if frozen else []
    held_facts = frozenset(p.fact_id for p in items if p.probe == KNOWLEDGE and p.fact_id)
    train, knowledge = hold_out_phrasings(pool, cfg, held_facts)
    unseen, extra = one_per_fact(fresh)
    current_ids = {p.id for p in pairs}
    carried = sum(p.id not in current_ids for p in items)
    known_train = frozen.train_docs if frozen else frozenset()
    train_docs = sorted({p.doc_id for p in [*train, *knowledge]} | known_train)
    order = {p.id: i for i, p in enumerate(pairs)}  # one order, frozen or not
    rejected = sorted(rejected + extra, key=lambda r: order[r.record_id])
    return Split(train, [*items, *knowledge, *unseen], rejected, carried, train_docs)


class SplitStats(BaseModel):
    """What split hands to decontaminate and publish besides its records
    (``out.stats_as(SplitStats)``)."""

    train: int
    eval: int
    train_docs: int
    eval_docs: int
    knowledge: int
    unseen_documents: int
    train_facts: int
    carried_eval: int
    eval_version: str
    eval_parent: str | None  # the frozen version this one extends (equal: nothing new)


def split_stats(result: Split, frozen: FrozenEval | None) -> SplitStats:
    probes = {
        probe: [p for p in result.eval if p.probe == probe]
        for probe in (KNOWLEDGE, UNSEEN_DOCUMENTS)
    }
    return SplitStats(
        train=len(result.train),
        eval=len(result.eval),
        train_docs=len({p.doc_id for p in result.train}),
        eval_docs=len({p.doc_id for p in probes[UNSEEN_DOCUMENTS]}),
        knowledge=len(probes[KNOWLEDGE]),
        unseen_documents=len(probes[UNSEEN_DOCUMENTS]),
        train_facts=len(by_fact(result.train)),
        carried_eval=result.carried,
        eval_version=eval_version_id(result.eval),
        eval_parent=frozen.version if frozen else None,
    )


@stage(STAGE)
def split(
    pairs: StageOutput, cfg: SplitConfig, workspace: str, frozen: dict[str, Any] | None = None
) -> Computed:
    """``train``, ``eval`` (both probes), ``rejections`` and ``train_docs`` (kept in train by
    the registry).

    ``frozen`` is ``split_registry.frozen_state``: None splits afresh by the hash rules.
    Counts: frozen items read from the registry enter alongside this run's pairs.
    """

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
