"""Reference metrics: how close an answer is to the eval split's reference answer.

Per item: exact match and token F1 after SQuAD normalisation, key-term recall (the share of
the reference's content words that the question does not already give away and the answer
contains, Porter-stemmed), ROUGE-L F1 (``rouge_score``, Porter-stemmed) and the cosine of
all-MiniLM-L6-v2 embeddings (``tasks.embeddings``). Means over items are the overall scores.
Key-term recall is what a user checks first: did the answer name the option, the number,
the stage? Not covered: ROUGE-L's tokenizer keeps only ``[a-z0-9]``, so it scores non-Latin
text as empty; the embedding model and the stop words are English-only.
"""

from __future__ import annotations

import functools
import re
import string
from collections import Counter
from typing import Any

REFERENCE_METRICS = ("exact_match", "token_f1", "key_term_recall", "rouge_l", "embedding_cosine")

# Words that carry no fact: a key term is any other reference word of 3+ characters (or
# with a digit) that the question does not contain.
# fmt: off
STOP_WORDS = frozenset({
    *("a", "an", "the", "and", "or", "but", "if", "then", "than", "so", "of", "in", "on", "at"),
    *("to", "for", "by", "with", "from", "as", "into", "onto", "about", "over", "under", "is"),
    *("are", "was", "were", "be", "been", "being", "it", "its", "this", "that", "these", "those"),
    *("there", "here", "which", "who", "whom", "whose", "what", "when", "where", "why", "how"),
    *("can", "could", "do", "does", "did", "done", "has", "have", "had", "will", "would", "shall"),
    *("should", "may", "might", "must", "not", "no", "yes", "all", "any", "each", "every", "some"),
    *("such", "one", "two", "also", "only", "just", "more", "most", "other", "same", "very"),
    *("you", "your", "we", "our", "they", "their", "them", "he", "she", "his", "her", "i", "me"),
    *("my", "us", "use", "used", "uses", "using", "get", "gets", "set", "sets", "make", "makes"),
    *("made", "way", "ways", "thing", "things"),
})
# fmt: on


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
def _stem(word: str) -> str:
    from nltk.stem.porter import PorterStemmer  # rouge-score's own stemmer

    return str(PorterStemmer().stem(word))


def key_terms(reference: str, question: str) -> set[str]:
    """Stemmed content words of ``reference`` not in ``question``.

    ``key_terms("Dedup uses MinHash LSH.", "What does dedup use?") == {"minhash", "lsh"}``
    """
    asked = {_stem(w) for w in normalize_answer(question).split()}
    return {
        stem
        for w in normalize_answer(reference).split()
        if (len(w) >= 3 or any(c.isdigit() for c in w)) and w not in STOP_WORDS
        if (stem := _stem(w)) not in asked
    }


def key_term_recall(pred: str, ref: str, question: str) -> float | None:
    """Share of the reference's key terms found in the prediction; None without key terms.

    ``key_term_recall("It uses LSH.", "Dedup uses MinHash LSH.", "What does dedup use?") == 0.5``
    """
    terms = key_terms(ref, question)
    if not terms:
        return None
    found = {_stem(w) for w in normalize_answer(pred).split()}
    return len(terms & found) / len(terms)


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


def item_scores(
    preds: list[str], refs: list[str], questions: list[str]
) -> list[dict[str, float | None]]:
    """Every reference metric for each aligned (prediction, reference, question)."""
    if not len(preds) == len(refs) == len(questions):
        raise ValueError(
            f"{len(preds)} predictions for {len(refs)} references, {len(questions)} questions"
        )
    cosines = embedding_cosines(preds, refs)
    return [
        {
            "exact_match": exact_match(p, r),
            "token_f1": token_f1(p, r),
            "key_term_recall": key_term_recall(p, r, q),
            "rouge_l": rouge_l(p, r),
            "embedding_cosine": c,
        }
        for p, r, q, c in zip(preds, refs, questions, cosines, strict=True)
    ]


def mean_scores(items: list[dict[str, float | None]], names: tuple[str, ...]) -> dict[str, Any]:
    """Mean of each metric over items; None when no item has a value for it."""
    out: dict[str, Any] = {}
    for name in names:
        values = [v for it in items if (v := it.get(name)) is not None]
        out[name] = sum(values) / len(values) if values else None
    return out
