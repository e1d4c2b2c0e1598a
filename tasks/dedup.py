"""Dedup: one pair per question, per near-identical question or QA text, per paraphrase.

Pairs are visited best first (judge ``score``, then longer answer, then input order) and each is
checked against the pairs kept so far, by four detectors in order; the first that matches names
the reason and the kept pair it duplicates:
1. ``exact_duplicate``: the same question after normalisation (case, punctuation, spacing);
2. ``near_duplicate_question``: MinHash of the question's word shingles, estimated Jaccard ≥
   ``cfg.question_threshold`` (questions are short: one changed word is a large share);
3. ``near_duplicate``: the same on question + answer, Jaccard ≥ ``cfg.threshold``;
4. ``semantic_duplicate`` (``cfg.semantic``): question cosine ≥ ``cfg.semantic_threshold`` under
   all-MiniLM-L6-v2 *and* answer cosine ≥ ``cfg.semantic_answer_threshold``. Template questions
   ("What is the ingest stage in …?" / "What is the chunk stage in …?") score 0.96 on the
   question alone, so the answers must agree too before a pair counts as a paraphrase.
So the best pair of a cluster is kept and every dropped pair names it (``duplicate_of``) and
its cluster (``cluster_id``). MinHash candidates come from LSH bands (``cfg.bands``) and are
verified on the signatures, so band collisions never cause a drop. Not covered: a persistent
(Redis) index shared between runs; a chain a≈b≈c with a≉c keeps a and c.
"""

from __future__ import annotations

import hashlib
import sys
from collections import defaultdict
from typing import Any, Protocol

import numpy as np
from prefect import task

from faqforge.config import DedupConfig
from faqforge.records import QAPair, Rejection
from faqforge.stage import StageCounts, StageOutput
from faqforge.tasking import run_stage, stage_cache_key_fn
from tasks.minhash import LSHIndex, jaccard, shingles, signatures
from tasks.text import normalise

STAGE = "dedup"
# Fixed so a pair's signature (and thus which pair is kept) is the same on every run.
MINHASH_SEED = 1

Match = tuple[int, float]  # (index of the kept pair, similarity)


class Detector(Protocol):
    """Finds a kept pair that pair ``i`` duplicates; learns each newly kept pair."""

    reason: str

    def match(self, i: int) -> Match | None: ...

    def add(self, i: int) -> None: ...


def question_key(pair: QAPair) -> str:
    """``"What is X?"`` and ``"what is x"`` share a key: sha256 of the normalised question."""
    return hashlib.sha256(normalise(pair.question).encode()).hexdigest()


def rank(pair: QAPair, position: int) -> tuple[float, int, int]:
    """Sort key, best first: judge score (unscored last), longer answer, earlier position."""
    score = pair.score if pair.score is not None else float("-inf")
    return (-score, -len(pair.answer), position)


class ExactQuestions:
    """Kept pairs by normalised question hash."""

    reason = "exact_duplicate"

    def __init__(self, pairs: list[QAPair]) -> None:
        self.keys = [question_key(p) for p in pairs]
        self.kept: dict[str, int] = {}

    def match(self, i: int) -> Match | None:
        j = self.kept.get(self.keys[i])
        return None if j is None else (j, 1.0)

    def add(self, i: int) -> None:
        self.kept[self.keys[i]] = i


class NearDuplicates:
    """Kept pairs in an LSH index of MinHash signatures; matches verified by estimated Jaccard."""

    def __init__(self, reason: str, texts: list[str], threshold: float, cfg: DedupConfig) -> None:
        self.reason, self.threshold = reason, threshold
        sets = [shingles(t, cfg.shingle_words) for t in texts]
        self.sigs = signatures(sets, cfg.num_perm, MINHASH_SEED)
        self.index = LSHIndex(cfg.bands, cfg.num_perm // cfg.bands)
        self.keys = self.index.band_keys(self.sigs)

    def match(self, i: int) -> Match | None:
        candidates = sorted(self.index.query(self.keys[i]))
        if not candidates:
            return None
        sims = jaccard(self.sigs[i], self.sigs[candidates])
        best = int(np.argmax(sims))
        return (candidates[best], float(sims[best])) if sims[best] >= self.threshold else None

    def add(self, i: int) -> None:
        self.index.insert(i, self.keys[i])


class Paraphrases:
    """Kept pairs whose question and answer embeddings are both close to this pair's."""

    reason = "semantic_duplicate"

    def __init__(self, pairs: list[QAPair], cfg: DedupConfig) -> None:
        from tasks.embeddings import embed, neighbours

        close = neighbours(embed([p.question for p in pairs]), cfg.semantic_threshold)
        # Answers are embedded only for pairs whose question has a close neighbour.
        involved = [i for i, near in enumerate(close) if near]
        answers = dict(zip(involved, embed([pairs[i].answer for i in involved]), strict=True))
        self.close = [
            [(j, q) for j, q in near if answers[i] @ answers[j] >= cfg.semantic_answer_threshold]
            for i, near in enumerate(close)
        ]
        self.kept: set[int] = set()

    def match(self, i: int) -> Match | None:
        found = [(q, -j) for j, q in self.close[i] if j in self.kept]
        if not found:
            return None
        q, j = max(found)
        return -j, q

    def add(self, i: int) -> None:
        self.kept.add(i)


def detectors(pairs: list[QAPair], cfg: DedupConfig) -> list[Detector]:
    found: list[Detector] = [
        ExactQuestions(pairs),
        NearDuplicates(
            "near_duplicate_question", [p.question for p in pairs], cfg.question_threshold, cfg
        ),
        NearDuplicates(
            "near_duplicate", [f"{p.question} {p.answer}" for p in pairs], cfg.threshold, cfg
        ),
    ]
    if cfg.semantic:
        found.append(Paraphrases(pairs, cfg))
    return found


def _reject(pair: QAPair, reason: str, kept: QAPair, similarity: float) -> Rejection:
    record = {
        **pair.to_dict(),
        "duplicate_of": kept.id,
        "cluster_id": cluster_id(kept),
        "similarity": round(similarity, 4),
    }
    detail = f"{reason.replace('_', ' ')} of {kept.id} (similarity {similarity:.2f})"
    return Rejection(record_id=pair.id, stage=STAGE, reason=reason, detail=detail, record=record)


def cluster_id(kept: QAPair) -> str:
    """A cluster is named after the pair it kept: ``dup-<kept id>``."""
    return f"dup-{kept.id}"


def dedup_pairs(pairs: list[QAPair], cfg: DedupConfig) -> tuple[list[QAPair], list[Rejection]]:
    """Keep the best pair of each duplicate cluster; kept pairs stay in their input order."""
    if not pairs:
        return [], []
    checks = detectors(pairs, cfg)
    kept: set[int] = set()
    rejected: list[Rejection] = []
    for i in sorted(range(len(pairs)), key=lambda k: rank(pairs[k], k)):
        for check in checks:
            if (hit := check.match(i)) is not None:
                rejected.append(_reject(pairs[i], check.reason, pairs[hit[0]], hit[1]))
                break
        else:
            kept.add(i)
            for check in checks:
                check.add(i)
    return [pairs[i] for i in sorted(kept)], rejected


def clusters(rejected: list[Rejection]) -> list[dict[str, Any]]:
    """One row per cluster with duplicates: its id, the kept pair and the dropped members."""
    members: dict[str, list[dict[str, str]]] = defaultdict(list)
    kept: dict[str, str] = {}
    for r in rejected:
        members[r.record["cluster_id"]].append({"id": r.record_id, "reason": r.reason})
        kept[r.record["cluster_id"]] = r.record["duplicate_of"]
    return [
        {"cluster_id": c, "kept": kept[c], "size": 1 + len(m), "dropped": m}
        for c, m in sorted(members.items())
    ]


@task(
    name="dedup",
    cache_key_fn=stage_cache_key_fn(STAGE, sys.modules[__name__]),
    persist_result=True,
    result_serializer="json",
)
def dedup(pairs: StageOutput, cfg: DedupConfig, workspace: str) -> StageOutput:
    """Pairs without duplicates (``pairs``), each drop naming its kept twin (``rejections``),
    and the duplicate clusters (``clusters``)."""

    def compute():
        items = pairs.read("pairs", QAPair)
        kept, rejected = dedup_pairs(items, cfg)
        counts = StageCounts.of(len(items), len(kept), rejected)
        groups = clusters(rejected)
        stats = {
            "clusters": len(groups),
            "largest_cluster": max((g["size"] for g in groups), default=0),
        }
        return {"pairs": kept, "rejections": rejected, "clusters": groups}, counts, stats

    params = {"pairs": pairs, "cfg": cfg, "workspace": workspace}
    return run_stage(STAGE, sys.modules[__name__], params, compute)
