"""Dedup: one pair per question, per near-identical question or QA text, per paraphrase.

It removes the same question, not the same fact: the phrasings a teacher wrote for one fact
(same ``fact_id``: one answer, two or three questions) are compared on their questions only,
so rules 3 and 4 below, which would see the shared answer, never merge them; and questions
that name different things in code ("What does `-j` do in `git-pull`?" / "... `git-fetch`?")
are different questions to rules 2-4, however alike their words. A fact's
phrasings are what the knowledge probe needs (one held out, the others trained on).

Pairs are visited best first (judge ``score``, then longer answer, then input order) and each is
checked against the pairs kept so far, by four detectors in order; the first that matches names
the reason and the kept pair it duplicates:
1. ``exact_duplicate``: the same question after normalisation (case, punctuation, spacing)
   with an agreeing answer; with another answer it is ``ambiguous_question``: one question
   asked of two facts, which ``tasks/ambiguity.py`` tried to repair first (a question that
   names each fact's subject) and could not;
2. ``near_duplicate_question``: MinHash of the question's word shingles, estimated Jaccard ≥
   ``cfg.question_threshold`` (questions are short: one changed word is a large share), with
   an agreeing answer (a near-alike question of another fact is a question of its own);
3. ``near_duplicate``: the same on question + answer, Jaccard ≥ ``cfg.threshold``, again only
   with an agreeing answer (``tasks.ambiguity.same_answer``: a different answer is never a
   duplicate);
4. ``semantic_duplicate`` (``cfg.semantic``): question cosine ≥ ``cfg.semantic_threshold`` under
   all-MiniLM-L6-v2 *and* answer cosine ≥ ``cfg.semantic_answer_threshold``. Template questions
   ("What is the ingest stage in …?" / "What is the chunk stage in …?") score 0.96 on the
   question alone, so the answers must agree too before a pair counts as a paraphrase.
So the best pair of a cluster is kept and every dropped pair names it (``duplicate_of``) and
its cluster (``cluster_id``). MinHash candidates come from LSH bands (``cfg.bands``) and are
verified on the signatures, so band collisions never cause a drop.

Scale-out changes where the work runs, never the result: the signatures are computed in
shards on the configured runner (``runner.kind`` dask/ray: worker processes), and the band
buckets live in this process or in Redis (``cfg.lsh_storage``). The keep/drop pass itself
is sequential by design (what is kept depends on the order). Signatures and embeddings are
kept between runs by text hash (``tasks/vector_cache.py``), so a nightly refresh computes
them for new texts only. Not covered: an LSH index kept between runs; a chain a≈b≈c with
a≉c keeps a and c.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from faqforge.config import DedupConfig, RunnerConfig, TeacherConfig
from faqforge.progress import Progress
from faqforge.records import QAPair, Rejection
from faqforge.stage import StageCounts, StageOutput
from faqforge.storage import Workspace
from faqforge.tasking import Computed, stage
from tasks.ambiguity import repair_ambiguous, same_answer
from tasks.coverage import phrasing_counts
from tasks.minhash import (
    SEED,
    BandIndex,
    IndexFactory,
    band_indexes,
    jaccard,
    signature_shard,
    text_signatures,
)
from tasks.text import code_spans, question_identity
from tasks.vector_cache import VectorCache

STAGE = "dedup"

Match = tuple[int, float]  # (index of the kept pair, similarity)
Signer = Callable[[list[str]], np.ndarray]  # texts → (len(texts), num_perm) signatures


class Detector(Protocol):
    """Finds a kept pair that pair ``i`` duplicates; learns each newly kept pair."""

    reason: str

    def match(self, i: int) -> Match | None: ...

    def add(self, i: int) -> None: ...


def question_key(pair: QAPair) -> str:
    """``"What is X?"`` and ``"what is x"`` share a key: sha256 of the question's identity
    (normalised words; code spans as written, so `-a` and `-A` differ)."""
    return hashlib.sha256(question_identity(pair.question).encode()).hexdigest()


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
    """Kept pairs in an LSH index of MinHash signatures; matches verified by estimated Jaccard.

    With ``facts``, a kept pair of the same fact is never a match: phrasings of one fact share
    their answer, so their question + answer texts are near-identical by design.
    """

    def __init__(
        self,
        reason: str,
        sigs: np.ndarray,
        threshold: float,
        new_index: IndexFactory,
        names: list[frozenset[str]],
        facts: list[str] | None = None,
    ) -> None:
        self.reason, self.threshold, self.sigs, self.facts = reason, threshold, sigs, facts
        self.names = names
        self.index: BandIndex = new_index(sigs)

    def match(self, i: int) -> Match | None:
        candidates = [c for c in sorted(self.index.query(i)) if not names_other(self.names, i, c)]
        if self.facts is not None:
            candidates = [c for c in candidates if not same_fact(self.facts, i, c)]
        if not candidates:
            return None
        sims = jaccard(self.sigs[i], self.sigs[candidates])
        best = int(np.argmax(sims))
        return (candidates[best], float(sims[best])) if sims[best] >= self.threshold else None

    def add(self, i: int) -> None:
        self.index.insert(i)


class Paraphrases:
    """Kept pairs whose question and answer embeddings are both close to this pair's; never
    another phrasing of the same fact (a paraphrase of its question is the point of it)."""

    reason = "semantic_duplicate"

    def __init__(
        self, pairs: list[QAPair], cfg: DedupConfig, cache_dir: Path | None = None
    ) -> None:
        from tasks.embeddings import embed, neighbours

        questions = embed([p.question for p in pairs], "dedup: embed questions", cache_dir)
        facts, names = [p.fact_id for p in pairs], [code_spans(p.question) for p in pairs]
        # Close questions of another fact that name nothing else: only these can merge, so
        # only their answers are embedded (most close questions are a fact's own phrasings).
        close = [
            [(j, q) for j, q in near if not same_fact(facts, i, j) and not names_other(names, i, j)]
            for i, near in enumerate(neighbours(questions, cfg.semantic_threshold))
        ]
        involved = [i for i, near in enumerate(close) if near]  # symmetric: j's are in too
        vectors = embed([pairs[i].answer for i in involved], "dedup: embed answers", cache_dir)
        answers = dict(zip(involved, vectors, strict=True))
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


def names_other(names: list[frozenset[str]], i: int, j: int) -> bool:
    """Whether two questions name different things in code (`git-pull` vs `git-fetch`): then
    they ask about different subjects however alike their words, and only the exact rule
    may merge them."""
    return bool(names[i]) and bool(names[j]) and names[i] != names[j]


def same_fact(facts: list[str], i: int, j: int) -> bool:
    """Whether pairs ``i`` and ``j`` phrase one fact (pairs without a fact id never do)."""
    return bool(facts[i]) and facts[i] == facts[j]


def local_signer(cfg: DedupConfig) -> Signer:
    """Signatures computed here, in one vectorised pass."""
    return lambda texts: text_signatures(texts, cfg.shingle_words, cfg.num_perm, SEED)


def runner_signer(cfg: DedupConfig, runner: RunnerConfig) -> Signer:
    """Signatures computed in shards on the runner's workers, concatenated in input order.

    Two shards per worker: one slow worker then holds up at most half a worker's share.
    """
    from faqforge.scaleout import map_shards

    def sign(texts: list[str]) -> np.ndarray:
        size = max(1, math.ceil(len(texts) / (2 * runner.workers)))
        shards = [
            (texts[lo : lo + size], cfg.shingle_words, cfg.num_perm, SEED)
            for lo in range(0, len(texts), size)
        ]
        return np.concatenate(map_shards(signature_shard, shards, runner))

    return sign


def cached_signer(sign: Signer, cfg: DedupConfig, cache_dir: Path) -> Signer:
    """``sign`` for the texts no earlier run signed; the others' signatures read back."""
    kind = f"minhash-{cfg.shingle_words}w-{cfg.num_perm}p-seed{SEED}"
    store = VectorCache(cache_dir, kind, "uint32")
    return lambda texts: store.vectors(texts, sign)


def detectors(
    pairs: list[QAPair],
    cfg: DedupConfig,
    sign: Signer,
    new_index: IndexFactory,
    cache_dir: Path | None = None,
) -> list[Detector]:
    n = len(pairs)
    # One call for both detectors' texts: on a runner, one fan-out instead of two.
    sigs = sign([p.question for p in pairs] + [f"{p.question} {p.answer}" for p in pairs])
    names = [code_spans(p.question) for p in pairs]
    found: list[Detector] = [
        ExactQuestions(pairs),
        NearDuplicates(
            "near_duplicate_question", sigs[:n], cfg.question_threshold, new_index, names
        ),
        NearDuplicates(
            "near_duplicate", sigs[n:], cfg.threshold, new_index, names, [p.fact_id for p in pairs]
        ),
    ]
    if cfg.semantic:
        found.append(Paraphrases(pairs, cfg, cache_dir))
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


def dedup_pairs(
    pairs: list[QAPair],
    cfg: DedupConfig,
    sign: Signer | None = None,
    cache_dir: Path | None = None,
) -> tuple[list[QAPair], list[Rejection]]:
    """Keep the best pair of each duplicate cluster; kept pairs stay in their input order.

    ``sign`` computes MinHash signatures (default: here, ``local_signer``). With
    ``cache_dir``, signatures and embeddings of texts seen by an earlier run are read back
    from there (``tasks/vector_cache.py``) instead of computed.
    """
    if not pairs:
        return [], []
    redis_url = cfg.redis_url if cfg.lsh_storage == "redis" else None
    with band_indexes(cfg.bands, cfg.num_perm // cfg.bands, SEED, redis_url) as new_index:
        sign = sign or local_signer(cfg)
        if cache_dir is not None:
            sign = cached_signer(sign, cfg, cache_dir)
        checks = detectors(pairs, cfg, sign, new_index, cache_dir)
        kept: set[int] = set()
        rejected: list[Rejection] = []
        progress = Progress("dedup: compare", len(pairs), "pairs")
        for i in progress.each(sorted(range(len(pairs)), key=lambda k: rank(pairs[k], k))):
            for check in checks:
                if (hit := check.match(i)) is None:
                    continue
                reason = check.reason
                if reason != "semantic_duplicate" and not same_answer(
                    pairs[i].answer, pairs[hit[0]].answer
                ):  # (the semantic rule checks answers by meaning itself)
                    if reason != "exact_duplicate":
                        continue  # a near-alike text of another fact is a question of its own
                    reason = "ambiguous_question"  # another fact: the repair found no name
                rejected.append(_reject(pairs[i], reason, pairs[hit[0]], hit[1]))
                break
            else:
                kept.add(i)
                for check in checks:
                    check.add(i)
    return [pairs[i] for i in sorted(kept)], rejected


def lost_answers(rejected: list[Rejection], kept: dict[str, QAPair]) -> int:
    """Dropped pairs whose answer says something their kept twin's does not: content lost.

    Only ``ambiguous_question`` drops can count here (a repair that found no distinguishing
    name); every other rule drops a pair whose answer agrees with the kept one's or whose
    question is a near copy of it.
    """
    return sum(
        r.reason == "ambiguous_question"
        and not same_answer(r.record["answer"], kept[r.record["duplicate_of"]].answer)
        for r in rejected
    )


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


def _key_params(params: dict[str, Any]) -> dict[str, Any]:
    """The inputs that decide the output: the runner and the index's location do not; the
    teacher does (it repairs ambiguous questions)."""
    teacher = params.get("teacher")
    return {
        "pairs": params["pairs"],
        "cfg": params["cfg"].content_key(),
        "workspace": params["workspace"],
        "teacher": teacher.content_key() if teacher is not None else None,
    }


@stage(STAGE, key_params=_key_params)
def dedup(
    pairs: StageOutput,
    cfg: DedupConfig,
    workspace: str,
    runner: RunnerConfig | None = None,
    teacher: TeacherConfig | None = None,
) -> Computed:
    """Pairs without duplicates (``pairs``), each drop naming its kept twin (``rejections``),
    the duplicate clusters (``clusters``) and the ambiguous questions with their repairs
    (``ambiguous``). ``teacher`` repairs them (``tasks/ambiguity.py``; None: the extractive
    teacher's context repair). ``runner`` (kind dask/ray) computes the MinHash signatures on
    its workers; the output is the same, and so is the cache key."""

    from faqforge.teachers.repair import make_repair

    ws = Workspace(Path(workspace))
    items = pairs.read("pairs", QAPair)
    repair = make_repair(teacher or TeacherConfig(), ws.teacher_cache)
    fixed = repair_ambiguous(items, repair)
    on_runner = runner is not None and runner.kind != "thread"
    signer = runner_signer(cfg, runner) if runner is not None and on_runner else None
    kept, rejected = dedup_pairs(fixed.pairs, cfg, signer, ws.vector_cache)
    counts = StageCounts.of(len(items), len(kept), rejected)
    groups = clusters(rejected)
    stats = {
        "clusters": len(groups),
        "largest_cluster": max((g["size"] for g in groups), default=0),
        "ambiguous_questions": len(fixed.groups),
        "repaired_pairs": fixed.repaired,
        "distinct_answers_lost": lost_answers(rejected, {p.id: p for p in kept}),
        **phrasing_counts(kept),
    }
    outputs = {
        "pairs": kept,
        "rejections": rejected,
        "clusters": groups,
        "ambiguous": fixed.groups,
    }
    return outputs, counts, stats
