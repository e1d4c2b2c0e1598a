"""Decontaminate: drop training pairs overlapping eval items of any eval version or a benchmark.

The split keeps each document on one side, but the same sentence can appear in two documents
(a boilerplate note, a copied paragraph), and an old eval version's items stay off limits after
``--new-eval``: a model trained on them would be scored on recall. References
(``tasks/references.py``) are this run's eval split, every registered eval version and the
configured benchmark files. A training pair is dropped, naming the reference it hit
(``eval_id``, ``eval_source``), by the first of these rules it meets:
1. ``eval_overlap``: GPT-3 style, a shared word n-gram of ``cfg.ngram_words`` words over the
   normalised question + answer; a text shorter than n words is one gram of its full length,
   which collides when it appears whole inside the other text;
2. ``eval_question``: the same normalised question (the answer does not matter);
3. ``eval_near_duplicate``: MinHash estimated Jaccard of word shingles ≥ ``cfg.minhash_threshold``
   (paraphrases that share no long span), the closest reference named.
Eval pairs are never dropped.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from datasketch import MinHash, MinHashLSH
from prefect import task

from faqforge.config import DecontaminateConfig
from faqforge.records import QAPair, Rejection
from faqforge.stage import StageCounts, StageOutput
from faqforge.storage import Workspace
from faqforge.tasking import run_stage, stage_cache_key_fn
from tasks.references import Reference, ReferenceSet, from_pairs, load_references
from tasks.text import normalise, word_ngrams, words

STAGE = "decontaminate"
MINHASH_SEED = 1  # fixed: the same pair gets the same signature on every run

Gram = tuple[str, ...]


class GramIndex:
    """Reference word grams → the first reference holding them, per gram length (on demand)."""

    def __init__(self, texts: list[tuple[int, list[str]]], n: int) -> None:
        self.n = n
        self._texts = texts
        self._tables: dict[int, dict[Gram, int]] = {}
        # Reference texts shorter than n are one gram each, matched whole inside a training text.
        self.short: dict[Gram, int] = {}
        for ref, tokens in texts:
            if 0 < len(tokens) < n:
                self.short.setdefault(tuple(tokens), ref)
        self.short_lengths = sorted({len(g) for g in self.short})

    def grams(self, length: int) -> dict[Gram, int]:
        if length not in self._tables:
            table: dict[Gram, int] = {}
            for ref, tokens in self._texts:
                for gram in word_ngrams(tokens, length):
                    table.setdefault(gram, ref)
            self._tables[length] = table
        return self._tables[length]

    def collision(self, tokens: list[str]) -> tuple[int, Gram] | None:
        """The first ``(reference index, gram)`` a training text shares, else None."""
        if not tokens:
            return None
        if len(tokens) < self.n:  # a short training text collides when found whole in eval
            probes = [(tuple(tokens), self.grams(len(tokens)))]
        else:
            probes = [(g, self.grams(self.n)) for g in word_ngrams(tokens, self.n)]
        probes += [(g, self.short) for k in self.short_lengths for g in word_ngrams(tokens, k)]
        return next(((table[g], g) for g, table in probes if g in table), None)


def signatures(token_lists: list[list[str]], cfg: DecontaminateConfig) -> list[MinHash]:
    """Seeded MinHash of word shingles; a text shorter than a shingle is one shingle."""
    sets = [
        {" ".join(g).encode() for g in (word_ngrams(t, cfg.shingle_words) or [tuple(t)])}
        for t in token_lists
    ]
    return MinHash.bulk(sets, num_perm=cfg.num_perm, seed=MINHASH_SEED)


class Contamination:
    """The three rules over a fixed set of references; ``check`` names the first hit."""

    def __init__(self, refs: list[Reference], cfg: DecontaminateConfig) -> None:
        self.refs, self.cfg = refs, cfg
        tokens = [words(f"{r.question} {r.answer}") for r in refs]
        self.grams = GramIndex(list(enumerate(tokens)), cfg.ngram_words)
        self.questions: dict[str, int] = {}
        for i, r in enumerate(refs):
            self.questions.setdefault(normalise(r.question), i)
        self.sigs = signatures(tokens, cfg)
        self.lsh = MinHashLSH(threshold=cfg.minhash_threshold, num_perm=cfg.num_perm)
        for i, sig in enumerate(self.sigs):
            self.lsh.insert(i, sig)

    def check(self, pair: QAPair, tokens: list[str], sig: MinHash) -> tuple[str, int, str] | None:
        """``(reason, reference index, detail)`` of the first rule the pair fails, or None."""
        if (hit := self.grams.collision(tokens)) is not None:
            ref, gram = hit
            return "eval_overlap", ref, f"shares {len(gram)} words: {' '.join(gram)!r}"
        if (same := self.questions.get(normalise(pair.question))) is not None:
            return "eval_question", same, "same normalised question"
        near = sorted(
            (-jac, i)
            for i in self.lsh.query(sig)
            if (jac := sig.jaccard(self.sigs[i])) >= self.cfg.minhash_threshold
        )
        if near:
            jac, ref = -near[0][0], near[0][1]
            return "eval_near_duplicate", ref, f"estimated Jaccard {jac:.2f}"
        return None


def remove_eval_overlap(
    train: list[QAPair], evals: Sequence[QAPair | Reference], cfg: DecontaminateConfig
) -> tuple[list[QAPair], list[Rejection]]:
    """Training pairs clear of every reference, and rejections naming the reference hit.

    >>> # remove_eval_overlap(train, eval_pairs + benchmark_refs, DecontaminateConfig())
    """
    refs = [r if isinstance(r, Reference) else from_pairs([r], "eval")[0] for r in evals]
    if not refs or not train:
        return list(train), []
    rules = Contamination(refs, cfg)
    tokens = [words(f"{p.question} {p.answer}") for p in train]
    kept: list[QAPair] = []
    rejected: list[Rejection] = []
    for pair, toks, sig in zip(train, tokens, signatures(tokens, cfg), strict=True):
        hit = rules.check(pair, toks, sig)
        if hit is None:
            kept.append(pair)
            continue
        reason, i, detail = hit
        ref = refs[i]
        rejected.append(
            Rejection(
                record_id=pair.id,
                stage=STAGE,
                reason=reason,
                detail=f"{ref.eval_id} ({ref.origin}): {detail}",
                record={**pair.to_dict(), "eval_id": ref.eval_id, "eval_source": ref.origin},
            )
        )
    return kept, rejected


@task(
    name="decontaminate",
    cache_key_fn=stage_cache_key_fn(STAGE, sys.modules[__name__]),
    persist_result=True,
    result_serializer="json",
)
def decontaminate(
    split: StageOutput,
    cfg: DecontaminateConfig,
    workspace: str,
    references: ReferenceSet | None = None,
) -> StageOutput:
    """The split with contaminated training pairs removed: ``train``, ``eval``, ``rejections``.

    ``references`` (``tasks.references.reference_set``) adds earlier eval versions and
    benchmarks to this run's eval split. Counts cover both sides (eval passes through).
    """

    def compute():
        train, evals = split.read("train", QAPair), split.read("eval", QAPair)
        current = from_pairs(evals, f"eval:{split.stats.get('eval_version', 'current')}")
        extra = load_references(Workspace(Path(workspace)), references or ReferenceSet())
        kept, rejected = remove_eval_overlap(train, current + extra, cfg)
        n_in, n_out = len(train) + len(evals), len(kept) + len(evals)
        stats = {"train": len(kept), "eval": len(evals), "references": len(current + extra)}
        outputs = {"train": kept, "eval": evals, "rejections": rejected}
        return outputs, StageCounts.of(n_in, n_out, rejected), stats

    params = {"split": split, "cfg": cfg, "workspace": workspace, "references": references}
    return run_stage(STAGE, sys.modules[__name__], params, compute)
