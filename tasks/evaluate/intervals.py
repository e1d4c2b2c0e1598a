"""Bootstrap 95% intervals: how much a mean over a few dozen eval items could move.

Percentile bootstrap over items, seeded, so the same scores give the same interval. The
base−tuned difference is resampled *paired* (the same items for both), which is what makes
a small gain on a small eval set distinguishable from noise. Not covered: BCa correction,
clustering by source document.
"""

from __future__ import annotations

from typing import Any

import numpy as np

LEVEL = 0.95


def bootstrap_ci(
    values: list[float], resamples: int, seed: int, level: float = LEVEL
) -> list[float] | None:
    """``[low, high]`` of the mean's percentile interval; None for no values.

    ``bootstrap_ci([1.0] * 5, 1000, 0) == [1.0, 1.0]``
    """
    if not values:
        return None
    data = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(data), size=(resamples, len(data)))
    means = data[idx].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return [float(low), float(high)]


def paired(items_a: list[Any], items_b: list[Any]) -> list[tuple[float, float]]:
    """Aligned (a, b) values where both are measured."""
    return [
        (a, b) for a, b in zip(items_a, items_b, strict=True) if a is not None and b is not None
    ]


def metric_intervals(
    base: list[dict[str, Any]],
    tuned: list[dict[str, Any]],
    names: tuple[str, ...],
    resamples: int,
    seed: int,
) -> dict[str, dict[str, list[float] | None]]:
    """``{"base": {m: ci}, "tuned": {m: ci}, "delta": {m: ci of tuned − base}}``."""
    out: dict[str, dict[str, list[float] | None]] = {"base": {}, "tuned": {}, "delta": {}}
    for m in names:
        b = [it.get(m) for it in base]
        t = [it.get(m) for it in tuned]
        out["base"][m] = bootstrap_ci([v for v in b if v is not None], resamples, seed)
        out["tuned"][m] = bootstrap_ci([v for v in t if v is not None], resamples, seed)
        out["delta"][m] = bootstrap_ci([y - x for x, y in paired(b, t)], resamples, seed)
    return out


def outcome_intervals(
    outcomes: list[str], resamples: int, seed: int
) -> dict[str, list[float] | None]:
    """Intervals of the win, tie and loss rates over per-item outcomes (``"win"``...)."""
    return {
        kind: bootstrap_ci([float(o == kind) for o in outcomes], resamples, seed)
        for kind in ("win", "tie", "loss")
    }
