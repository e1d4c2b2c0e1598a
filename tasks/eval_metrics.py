"""Reference metrics: how close an answer is to the eval split's reference answer.

Per item: exact match and token F1 after SQuAD normalisation, ROUGE-L F1 (``rouge_score``,
Porter-stemmed) and the cosine of all-MiniLM-L6-v2 embeddings (``tasks.embeddings``).
Means over items are the overall scores. Not covered: ROUGE-L's tokenizer keeps only
``[a-z0-9]``, so it scores non-Latin text as empty; the embedding model is English-only.
"""

from __future__ import annotations

import functools
import re
import string
from collections import Counter
from typing import Any

REFERENCE_METRICS = ("exact_match", "token_f1", "rouge_l", "embedding_cosine")


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: ``"The  Cat!"`` → ``"cat"``."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(pred: str, ref: str) -> float:
    """1.0 when the normalised strings are equal: ``exact_match("the cat.", "Cat") == 1.0``."""
    return float(normalize_answer(pred) == normalize_answer(ref))


def token_f1(pred: str, ref: str) -> float:
    """SQuAD token F1 of normalised words: ``token_f1("red kettle", "the kettle") == 0.5``.

    Both empty is a match (1.0); exactly one empty scores 0.0.
    """
    p, r = normalize_answer(pred).split(), normalize_answer(ref).split()
    if not p or not r:
        return float(p == r)
    common = sum((Counter(p) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


@functools.cache
def _rouge_scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(pred: str, ref: str) -> float:
    """ROUGE-L F1 of the longest common subsequence (Porter-stemmed words)."""
    return _rouge_scorer().score(ref, pred)["rougeL"].fmeasure


def embedding_cosines(preds: list[str], refs: list[str]) -> list[float]:
    """Cosine of each prediction's embedding with its reference's (one batched encode).

    An empty prediction scores 0.0: the model would embed it as *something*, which is no
    evidence of a right answer.
    """
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predictions for {len(refs)} references")
    if not preds:
        return []
    from tasks.embeddings import embed

    vectors = embed([*preds, *refs])
    n = len(preds)
    sims = (vectors[:n] * vectors[n:]).sum(axis=1)
    return [float(s) if p.strip() else 0.0 for s, p in zip(sims, preds, strict=True)]


def item_scores(preds: list[str], refs: list[str]) -> list[dict[str, float | None]]:
    """Every reference metric for each aligned (prediction, reference)."""
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predictions for {len(refs)} references")
    cosines = embedding_cosines(preds, refs)
    return [
        {
            "exact_match": exact_match(p, r),
            "token_f1": token_f1(p, r),
            "rouge_l": rouge_l(p, r),
            "embedding_cosine": c,
        }
        for p, r, c in zip(preds, refs, cosines, strict=True)
    ]


def mean_scores(items: list[dict[str, float | None]], names: tuple[str, ...]) -> dict[str, Any]:
    """Mean of each metric over items; None when no item has a value for it."""
    out: dict[str, Any] = {}
    for name in names:
        values = [v for it in items if (v := it.get(name)) is not None]
        out[name] = sum(values) / len(values) if values else None
    return out
