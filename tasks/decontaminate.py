"""Decontaminate: keep eval items' answers, or their wording, out of training.

The split keeps each held-out document on one side, but the same sentence can appear in two
documents (a boilerplate note, a copied paragraph), and an old eval version's items stay off
limits after ``--new-eval``: a model trained on them would be scored on recall. References
(``tasks/references.py``) are this run's eval split, every registered eval version and the
configured benchmark files. Which rules apply depends on what a reference is for:

- **unseen-documents items and benchmarks** (their content must stay unseen): a training pair
  is dropped by the first of
  1. ``eval_overlap``: GPT-3 style, a shared word n-gram of ``cfg.ngram_words`` words over
     the normalised question + answer; a text shorter than n words is one gram of its full
     length, which collides when it appears whole inside the other text;
  2. ``eval_question``: the same normalised question (the answer does not matter);
  3. ``eval_answer``: the same normalised answer of ``ANSWER_WORDS`` words or more (another
     phrasing of a held-out fact, however short its answer);
  4. ``eval_near_duplicate``: MinHash estimated Jaccard of word shingles ≥
     ``cfg.minhash_threshold`` (paraphrases that share no long span), the closest named.
- **knowledge-probe items** (question-level only: the fact is meant to be trained on, through
  its other phrasings; only the probe's wording is held out): ``eval_question`` as above, or
  ``eval_near_question``: word-pair (2-shingle) Jaccard of the two questions ≥
  ``cfg.question_threshold``, computed exactly.

Each drop names the reference it hit (``eval_id``, ``eval_source``). Eval items are never
dropped; each knowledge item's ``taught_by`` is set to the training pairs of its fact that
remain (an item left with none is counted as ``knowledge_untaught``; evaluation does not
score it).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from datasketch import MinHashLSH

from faqforge.config import DecontaminateConfig
from faqforge.records import KNOWLEDGE, EvalItem, QAPair, Rejection
from faqforge.stage import StageCounts, StageOutput
from faqforge.storage import Workspace
from faqforge.tasking import Computed, stage
from tasks.minhash import SEED, LSHIndex, jaccard
from tasks.minhash import signatures as minhash_signatures
from tasks.references import Reference, ReferenceSet, from_pairs, load_references
from tasks.split import SplitStats
from tasks.text import normalise, shingles, word_ngrams, words

STAGE = "decontaminate"
# Shorter answers ("Yes.", "The default.") are shared by chance, not by a leaked fact.
ANSWER_WORDS = 4

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


def signatures(token_lists: list[list[str]], cfg: DecontaminateConfig) -> np.ndarray:
    """Seeded MinHash of word shingles, ``(len(token_lists), num_perm)``; a text shorter than
    a shingle is one shingle."""
    sets = [
        {" ".join(g).encode() for g in (word_ngrams(t, cfg.shingle_words) or [tuple(t)])}
        for t in token_lists
    ]
    return minhash_signatures(sets, cfg.num_perm, SEED)


def lsh_index(cfg: DecontaminateConfig) -> LSHIndex:
    """Bands for ``cfg.minhash_threshold``: datasketch's choice of bands × rows (its
    ``MinHashLSH`` weighs false positives and negatives equally), held in this process."""
    layout = MinHashLSH(threshold=cfg.minhash_threshold, num_perm=cfg.num_perm)
    return LSHIndex(layout.b, layout.r)


class QuestionIndex:
    """Knowledge-probe questions by word pair, for exact Jaccard against a training question."""

    def __init__(self, questions: list[tuple[int, str]], threshold: float) -> None:
        self.threshold = threshold
        self.sets = {ref: shingles(q) for ref, q in questions}
        self.postings: dict[Gram, list[int]] = defaultdict(list)
        for ref, grams in self.sets.items():
            for gram in grams:
                self.postings[gram].append(ref)

    def closest(self, question: str) -> tuple[int, float] | None:
        """``(reference index, Jaccard)`` of the most similar question at the threshold."""
        grams = shingles(question)
        shared = Counter(ref for g in grams for ref in self.postings.get(g, ()))
        best = max(
            ((n / (len(grams) + len(self.sets[ref]) - n), -ref) for ref, n in shared.items()),
            default=None,
        )
        return (-best[1], best[0]) if best and best[0] >= self.threshold else None


class Contamination:
    """The rules over a fixed set of references; ``check`` names the first hit."""

    def __init__(self, refs: list[Reference], cfg: DecontaminateConfig) -> None:
        self.refs, self.cfg = refs, cfg
        full = [i for i, r in enumerate(refs) if not r.question_only]
        tokens = [words(f"{refs[i].question} {refs[i].answer}") for i in full]
        self.grams = GramIndex(list(zip(full, tokens, strict=True)), cfg.ngram_words)
        self.questions: dict[str, int] = {}
        for i, r in enumerate(refs):
            self.questions.setdefault(normalise(r.question), i)
        self.answers: dict[str, int] = {}
        for i in full:
            if len((answer := normalise(refs[i].answer)).split()) >= ANSWER_WORDS:
                self.answers.setdefault(answer, i)
        self.worded = QuestionIndex(
            [(i, r.question) for i, r in enumerate(refs) if r.question_only],
            cfg.question_threshold,
        )
        self.full, self.sigs = full, signatures(tokens, cfg)  # signature rows follow ``full``
        self.lsh = lsh_index(cfg)
        for row, keys in enumerate(self.lsh.band_keys(self.sigs)):
            self.lsh.insert(row, keys)

    def check(
        self, pair: QAPair, tokens: list[str], sig: np.ndarray, keys: np.ndarray
    ) -> tuple[str, int, str] | None:
        """``(reason, reference index, detail)`` of the first rule the pair fails, or None;
        ``sig`` is the pair's signature and ``keys`` its band keys (``lsh.band_keys``)."""
        if (hit := self.grams.collision(tokens)) is not None:
            ref, gram = hit
            return "eval_overlap", ref, f"shares {len(gram)} words: {' '.join(gram)!r}"
        if (same := self.questions.get(normalise(pair.question))) is not None:
            return "eval_question", same, "same normalised question"
        if (same := self.answers.get(normalise(pair.answer))) is not None:
            return "eval_answer", same, "same normalised answer"
        if (close := self.worded.closest(pair.question)) is not None:
            ref, jac = close
            return "eval_near_question", ref, f"question word-pair Jaccard {jac:.2f}"
        rows = sorted(self.lsh.query(keys))
        near = sorted(
            (-float(jac), self.full[row])
            for row, jac in zip(rows, jaccard(sig, self.sigs[rows]), strict=True)
            if jac >= self.cfg.minhash_threshold
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
    sigs = signatures(tokens, cfg)
    kept: list[QAPair] = []
    rejected: list[Rejection] = []
    for pair, toks, sig, keys in zip(train, tokens, sigs, rules.lsh.band_keys(sigs), strict=True):
        hit = rules.check(pair, toks, sig, keys)
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


def with_teachers(evals: list[EvalItem], train: list[QAPair]) -> list[EvalItem]:
    """Eval items with each knowledge item's ``taught_by``: the training pairs of its fact."""
    taught: dict[str, list[str]] = defaultdict(list)
    for p in train:
        if p.fact_id:
            taught[p.fact_id].append(p.id)
    return [
        replace(e, taught_by=taught.get(e.fact_id, []) if e.fact_id else [])
        if e.probe == KNOWLEDGE
        else e
        for e in evals
    ]


@stage(STAGE)
def decontaminate(
    split: StageOutput,
    cfg: DecontaminateConfig,
    workspace: str,
    references: ReferenceSet | None = None,
) -> Computed:
    """The split with contaminated training pairs removed: ``train``, ``eval``, ``rejections``.

    ``references`` (``tasks.references.reference_set``) adds earlier eval versions and
    benchmarks to this run's eval split. Counts cover both sides (eval passes through, its
    knowledge items with ``taught_by`` filled in).
    """

    train, evals = split.read("train", QAPair), split.read("eval", EvalItem)
    current = from_pairs(evals, f"eval:{split.stats_as(SplitStats).eval_version}")
    extra = load_references(Workspace(Path(workspace)), references or ReferenceSet())
    kept, rejected = remove_eval_overlap(train, current + extra, cfg)
    evals = with_teachers(evals, kept)
    n_in, n_out = len(train) + len(evals), len(kept) + len(evals)
    untaught = sum(e.probe == KNOWLEDGE and not e.taught_by for e in evals)
    stats = {
        "train": len(kept),
        "eval": len(evals),
        "references": len(current + extra),
        "knowledge_untaught": untaught,
    }
    outputs = {"train": kept, "eval": evals, "rejections": rejected}
    return outputs, StageCounts.of(n_in, n_out, rejected), stats
