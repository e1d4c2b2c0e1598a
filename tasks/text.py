"""Text helpers shared by the data stages: normalised form, word tokens, n-grams, overlap.

Normalisation is deliberately blunt (Unicode NFKC, casefold, apostrophes dropped, every other
non-word character a space, whitespace collapsed) so that two texts differing only in case,
punctuation or spacing compare equal. It does no stemming, stop-word removal or transliteration.
"""

from __future__ import annotations

import re
import unicodedata

_APOSTROPHES = re.compile(r"['’‘`]")
_CODE = re.compile(r"`([^`]+)`")
_NON_WORD = re.compile(r"[\W_]+")


def normalise(text: str) -> str:
    """``"What's  the *cache* key?"`` → ``"whats the cache key"``."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _NON_WORD.sub(" ", _APOSTROPHES.sub("", text)).strip()


def words(text: str) -> list[str]:
    """Normalised word tokens: ``"Dedup, then split."`` → ``["dedup", "then", "split"]``."""
    return normalise(text).split()


def word_ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    """Contiguous n-grams: ``(["a", "b", "c"], 2)`` → ``[("a", "b"), ("b", "c")]``."""
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def shingles(text: str, n: int = 2) -> set[tuple[str, ...]]:
    """Word n-gram set of the normalised text; a text shorter than n words is one shingle."""
    tokens = words(text)
    return set(word_ngrams(tokens, n)) or {tuple(tokens)}


def jaccard(a: set, b: set) -> float:
    """``jaccard({1, 2}, {2, 3}) == 1 / 3``; two empty sets are equal (1.0)."""
    return len(a & b) / len(a | b) if a or b else 1.0


def code_spans(text: str) -> frozenset[str]:
    """The code spans of a text, as written: ``"What does `-j` do?"`` → ``{"-j"}``."""
    return frozenset(_CODE.findall(text))


_QUOTED = re.compile(r'"([^"]{1,40})"')


def question_identity(question: str) -> str:
    """What makes two questions the same: their normalised words, plus their code spans and
    short quoted literals as written, since case and punctuation matter in code (``-a`` and
    ``-A`` are different options, ``"'#'"`` and ``"'_'"`` different format flags)."""
    literals = sorted(code_spans(question) | set(_QUOTED.findall(question)))
    return normalise(question) + "\0" + "\0".join(literals)
