"""Error analysis: which known failure modes each answer shows, counted with examples.

Categories (one answer may show several):

- ``repetition``: some word n-gram occurs at least ``min_count`` times (a model stuck in a loop);
- ``verbosity``: more than ``ratio`` × the reference's words (and at least 5 words more);
- ``refusal``: declines or claims not to know (English phrases only);
- ``hallucinated_link``: a link (URL or e-mail address, as ``tasks/links.py`` finds them, the
  same rule curate applies to training pairs) in neither the source chunk nor the reference;
- ``truncation``: generation stopped at the max-token limit, not at the stop token.

Not covered: factual errors without those surface marks (the judge's job), non-English refusals.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from tasks.links import unsourced_links

CATEGORIES = ("repetition", "verbosity", "refusal", "hallucinated_link", "truncation")
EXAMPLES = 3

_REFUSAL = re.compile(
    r"\b(i (do not|don't|cannot|can't|am unable to|am not able to) "
    r"(know|answer|help|say|provide|find)|i'm (sorry|unable|not sure)|i am sorry|"
    r"as an ai\b|no information (about|on)|not (mentioned|covered) in)",
    re.I,
)


@dataclass(frozen=True)
class ErrorRules:
    """Thresholds of the error categories (from EvaluateConfig)."""

    repetition_ngram: int = 3
    repetition_min_count: int = 3
    verbosity_ratio: float = 2.0


def repeated_ngram(text: str, n: int, min_count: int) -> str | None:
    """The most repeated word n-gram when it occurs ``min_count``+ times, else None.

    ``repeated_ngram("a b c a b c a b c", 3, 3) == "a b c"``
    """
    words = text.lower().split()
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    if not grams:
        return None
    gram, count = grams.most_common(1)[0]
    return " ".join(gram) if count >= min_count else None


def is_verbose(answer: str, reference: str, ratio: float) -> bool:
    """Longer than ``ratio`` × the reference in words, by at least 5 words."""
    a, r = len(answer.split()), len(reference.split())
    return a > ratio * r and a - r >= 5


def is_refusal(answer: str) -> bool:
    return bool(_REFUSAL.search(answer))


def hallucinated_links(answer: str, source: str, reference: str) -> list[str]:
    """Links in ``answer`` found in neither the source chunk nor the reference answer."""
    return unsourced_links(answer, f"{source}\n{reference}")


def categorize(
    answer: str, reference: str, source: str, truncated: bool, rules: ErrorRules
) -> dict[str, str]:
    """Category → evidence (a short string) for each category this answer shows."""
    found: dict[str, str] = {}
    gram = repeated_ngram(answer, rules.repetition_ngram, rules.repetition_min_count)
    if gram is not None:
        found["repetition"] = f"repeats {gram!r}"
    if is_verbose(answer, reference, rules.verbosity_ratio):
        found["verbosity"] = f"{len(answer.split())} words vs {len(reference.split())}"
    if is_refusal(answer):
        found["refusal"] = "declines to answer"
    if links := hallucinated_links(answer, source, reference):
        found["hallucinated_link"] = ", ".join(links)
    if truncated:
        found["truncation"] = "hit the max-token limit"
    return found


def summarize(flags: list[dict[str, str]], ids: list[str]) -> dict[str, dict]:
    """Per category: ``{"count": n, "rate": n/items, "examples": [{"id", "evidence"}]}``."""
    out = {}
    for cat in CATEGORIES:
        hits = [(i, f[cat]) for i, f in zip(ids, flags, strict=True) if cat in f]
        out[cat] = {
            "count": len(hits),
            "rate": len(hits) / len(ids) if ids else 0.0,
            "examples": [{"id": i, "evidence": e} for i, e in hits[:EXAMPLES]],
        }
    return out
