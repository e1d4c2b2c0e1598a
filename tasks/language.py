"""Language identification with py3langid: offline, deterministic, a 4 MB naive-Bayes model.

The model is loaded once per process (about 1–2 s) on first use. Probabilities are normalised,
so a confidence can be thresholded; on short or code-heavy text the best guess is often weak
(``"What is MinHash LSH?"`` → en, 0.36), which is why callers should act only on a confident one.
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def check_codes(codes: list[str]) -> None:
    """Raise on codes the model cannot emit: a typo would otherwise reject every pair."""
    unknown = sorted(set(codes) - set(identifier().labels))
    if unknown:
        raise ValueError(
            f"curate.languages: unknown language code(s) {unknown}; use ISO 639-1 codes "
            f"such as 'en', 'de', 'fr' (known: {', '.join(sorted(identifier().labels))})"
        )


def detect(text: str) -> tuple[str, float]:
    """``("de", 0.99)`` for ``"Wie werden Dokumente eingelesen?"``: best language, confidence."""
    lang, confidence = identifier().classify(text)
    return lang, confidence
