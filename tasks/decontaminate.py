"""Decontaminate: drop training pairs that share a long word n-gram with any eval pair.

The split already keeps each document on one side, but the same sentence can appear in two
documents (a boilerplate note, a copied paragraph); a model trained on it would be scored on
recall rather than on answering. The rule follows GPT-3's: two texts collide when they share a
word n-gram of ``cfg.ngram_words`` words over the normalised question + answer. A text shorter
than n words counts as one gram of its full length, which collides when it appears whole inside
the other text. Eval pairs are never dropped. Not covered: paraphrases (no MinHash pass here;
near-duplicates across the split are rare once dedup has run over the whole set).
"""

from __future__ import annotations

import sys

from prefect import task

from faqforge.config import DecontaminateConfig
from faqforge.records import QAPair, Rejection
from faqforge.stage import StageCounts, StageOutput
from faqforge.tasking import run_stage, stage_cache_key_fn
from tasks.text import word_ngrams, words

STAGE = "decontaminate"

Gram = tuple[str, ...]


def pair_words(pair: QAPair) -> list[str]:
    return words(f"{pair.question} {pair.answer}")


class EvalIndex:
    """Eval word grams → the first eval id that holds them, per gram length (built on demand)."""

    def __init__(self, evals: list[QAPair], n: int) -> None:
        self.n = n
        self._texts = [(p.id, pair_words(p)) for p in evals]
        self._tables: dict[int, dict[Gram, str]] = {}
        # Eval texts shorter than n are one gram each, matched whole inside a training text.
        self.short: dict[Gram, str] = {}
        for pid, tokens in self._texts:
            if 0 < len(tokens) < n:
                self.short.setdefault(tuple(tokens), pid)
        self.short_lengths = sorted({len(g) for g in self.short})

    def grams(self, length: int) -> dict[Gram, str]:
        if length not in self._tables:
            table: dict[Gram, str] = {}
            for pid, tokens in self._texts:
                for gram in word_ngrams(tokens, length):
                    table.setdefault(gram, pid)
            self._tables[length] = table
        return self._tables[length]

    def collision(self, tokens: list[str]) -> tuple[str, Gram] | None:
        """The first ``(eval_id, gram)`` a training text shares with eval, else None."""
        if not tokens:
            return None
        if len(tokens) < self.n:  # a short training text collides when found whole in eval
            probes = [(tuple(tokens), self.grams(len(tokens)))]
        else:
            probes = [(g, self.grams(self.n)) for g in word_ngrams(tokens, self.n)]
        probes += [(g, self.short) for k in self.short_lengths for g in word_ngrams(tokens, k)]
        return next(((table[g], g) for g, table in probes if g in table), None)


def remove_eval_overlap(
    train: list[QAPair], evals: list[QAPair], cfg: DecontaminateConfig
) -> tuple[list[QAPair], list[Rejection]]:
    """Training pairs without eval overlap, and ``eval_overlap`` rejections naming the eval pair."""
    index = EvalIndex(evals, cfg.ngram_words)
    kept: list[QAPair] = []
    rejected: list[Rejection] = []
    for pair in train:
        hit = index.collision(pair_words(pair))
        if hit is None:
            kept.append(pair)
            continue
        eval_id, gram = hit
        rejected.append(
            Rejection(
                record_id=pair.id,
                stage=STAGE,
                reason="eval_overlap",
                detail=f"shares {len(gram)} words with eval pair {eval_id}: {' '.join(gram)!r}",
                record={**pair.to_dict(), "eval_id": eval_id},
            )
        )
    return kept, rejected


@task(
    name="decontaminate",
    cache_key_fn=stage_cache_key_fn(STAGE, sys.modules[__name__]),
    persist_result=True,
    result_serializer="json",
)
def decontaminate(split: StageOutput, cfg: DecontaminateConfig, workspace: str) -> StageOutput:
    """The split with overlapping training pairs removed: ``train``, ``eval``, ``rejections``.

    Counts cover both sides (eval passes through), so they continue the split's counts.
    """

    def compute():
        train, evals = split.read("train", QAPair), split.read("eval", QAPair)
        kept, rejected = remove_eval_overlap(train, evals, cfg)
        n_in, n_out = len(train) + len(evals), len(kept) + len(evals)
        stats = {"train": len(kept), "eval": len(evals)}
        outputs = {"train": kept, "eval": evals, "rejections": rejected}
        return outputs, StageCounts.of(n_in, n_out, rejected), stats

    params = {"split": split, "cfg": cfg, "workspace": workspace}
    return run_stage(STAGE, sys.modules[__name__], params, compute)
