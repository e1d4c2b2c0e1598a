"""Dedup: keep one pair per question, and one per near-identical question+answer.

Two passes, both keeping the earliest pair in record order:
1. exact: questions equal after normalisation (case, punctuation, spacing);
2. near: MinHash over word shingles of the normalised question + answer, candidates from an
   LSH index of the pairs kept so far, confirmed by estimated Jaccard ≥ ``cfg.threshold``.
   The LSH band layout favours recall (false negatives weigh 0.9); the Jaccard check then
   removes the false candidates, so precision does not suffer.
Only kept pairs enter the index, so a chain a≈b≈c with a≉c keeps a and c. The index lives in
memory; a Redis-backed ``MinHashLSH(storage_config=...)`` would serve a distributed run.
"""

from __future__ import annotations

import hashlib
import sys

from datasketch import MinHash, MinHashLSH
from prefect import task

from faqforge.config import DedupConfig
from faqforge.records import QAPair, Rejection
from faqforge.stage import StageCounts, StageOutput
from faqforge.tasking import run_stage, stage_cache_key_fn
from tasks.text import normalise, word_ngrams, words

STAGE = "dedup"
# Fixed so a pair's signature (and thus which pair is kept) is the same on every run.
MINHASH_SEED = 1
LSH_WEIGHTS = (0.1, 0.9)  # (false positive, false negative) weights for the band layout


def question_key(pair: QAPair) -> str:
    """``"What is X?"`` and ``"what is x"`` share a key: sha256 of the normalised question."""
    return hashlib.sha256(normalise(pair.question).encode()).hexdigest()


def shingles(text: str, size: int) -> set[bytes]:
    """Word shingles of the normalised text; a text shorter than ``size`` is one shingle."""
    tokens = words(text)
    grams = word_ngrams(tokens, size) or [tuple(tokens)]
    return {" ".join(g).encode() for g in grams}


def signatures(texts: list[str], cfg: DedupConfig) -> list[MinHash]:
    """One MinHash per text, all with the same seeded permutations (comparable, repeatable)."""
    sets = [shingles(t, cfg.shingle_words) for t in texts]
    return MinHash.bulk(sets, num_perm=cfg.num_perm, seed=MINHASH_SEED)


def _reject(pair: QAPair, reason: str, kept_id: str, detail: str, **extra: object) -> Rejection:
    record = {**pair.to_dict(), "duplicate_of": kept_id, **extra}
    return Rejection(record_id=pair.id, stage=STAGE, reason=reason, detail=detail, record=record)


def drop_exact(pairs: list[QAPair]) -> tuple[list[QAPair], list[Rejection]]:
    """Keep the first pair of each normalised question; later ones are ``exact_duplicate``."""
    first: dict[str, str] = {}
    kept: list[QAPair] = []
    rejected: list[Rejection] = []
    for pair in pairs:
        key = question_key(pair)
        if key in first:
            detail = f"same normalised question as {first[key]}"
            rejected.append(_reject(pair, "exact_duplicate", first[key], detail))
        else:
            first[key] = pair.id
            kept.append(pair)
    return kept, rejected


def drop_near(pairs: list[QAPair], cfg: DedupConfig) -> tuple[list[QAPair], list[Rejection]]:
    """Drop pairs whose question+answer nearly copies an earlier kept one: ``near_duplicate``."""
    sigs = signatures([f"{p.question} {p.answer}" for p in pairs], cfg)
    lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm, weights=LSH_WEIGHTS)
    order: dict[str, int] = {}  # kept id → position, to name the earliest match
    kept: list[QAPair] = []
    rejected: list[Rejection] = []
    for i, (pair, sig) in enumerate(zip(pairs, sigs, strict=True)):
        matches = sorted(
            (order[k], k, jac)
            for k in lsh.query(sig)
            if (jac := sig.jaccard(sigs[order[k]])) >= cfg.threshold
        )
        if matches:
            _, kept_id, jac = matches[0]
            detail = f"near copy of {kept_id} (estimated Jaccard {jac:.2f})"
            rejected.append(_reject(pair, "near_duplicate", kept_id, detail, jaccard=round(jac, 4)))
        else:
            lsh.insert(pair.id, sig)
            order[pair.id] = i
            kept.append(pair)
    return kept, rejected


def dedup_pairs(pairs: list[QAPair], cfg: DedupConfig) -> tuple[list[QAPair], list[Rejection]]:
    """Exact then near-duplicate removal; kept pairs stay in their input order."""
    unique, exact = drop_exact(pairs)
    kept, near = drop_near(unique, cfg)
    return kept, exact + near


@task(
    name="dedup",
    cache_key_fn=stage_cache_key_fn(STAGE, sys.modules[__name__]),
    persist_result=True,
    result_serializer="json",
)
def dedup(pairs: StageOutput, cfg: DedupConfig, workspace: str) -> StageOutput:
    """Pairs without duplicates (``pairs``); each duplicate names its kept twin (``rejections``)."""

    def compute():
        items = pairs.read("pairs", QAPair)
        kept, rejected = dedup_pairs(items, cfg)
        counts = StageCounts.of(len(items), len(kept), rejected)
        return {"pairs": kept, "rejections": rejected}, counts, {}

    params = {"pairs": pairs, "cfg": cfg, "workspace": workspace}
    return run_stage(STAGE, sys.modules[__name__], params, compute)
