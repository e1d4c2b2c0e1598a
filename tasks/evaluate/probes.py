"""What an evaluation means: scores per probe, the knowledge lift, abstention, degenerate output.

- **Per probe** (``records.EvalItem.probe``): mean scores of base and tuned with 95%
  bootstrap intervals, the tuned − base difference resampled paired.
- **Knowledge lift**, the headline: ``(tuned − base on knowledge) − (tuned − base on
  unseen_documents)`` of ``metric`` (token F1 by default). A closed-book model cannot know
  unseen documents, so their gain is what answer style alone buys; subtracting it leaves
  what fine-tuning taught. Its 95% interval resamples the items of each probe independently,
  each paired base/tuned. Without unseen-documents items the lift is the knowledge gain,
  flagged ``uncorrected``.
- **Confident answers on unseen documents**: the share of answers that are neither empty nor
  a refusal, where the right answer is "I don't know"; ``confident_wrong`` adds token F1
  below ``correct_f1``.
- **Degenerate output**: answers empty, mostly repeated, or far shorter than the references.
  Averages hide it (347 empty answers of 347, or 30 distinct strings in 64, were "promoted"
  before), so it is named in the report's first line, the CLI and the model card, and the
  gate refuses.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from faqforge.config import EvaluateConfig
from tasks.evaluate.errors import is_refusal
from tasks.evaluate.intervals import LEVEL, metric_intervals, paired
from tasks.evaluate.metrics import mean_scores


def probe_summary(
    scores: dict[str, list[dict[str, Any]]],
    names: tuple[str, ...],
    cfg: EvaluateConfig,
) -> dict[str, Any]:
    """``{"n", side: means..., "ci95"}`` for one probe's per-item scores of every side."""
    n = len(scores["base"])
    summary: dict[str, Any] = {"n": n, **{s: mean_scores(v, names) for s, v in scores.items()}}
    summary["ci95"] = metric_intervals(
        scores["base"], scores["tuned"], names, cfg.bootstrap_resamples, cfg.seed
    )
    return summary


def _gains(base: list[Any], tuned: list[Any]) -> np.ndarray:
    return np.asarray([t - b for b, t in paired(base, tuned)], dtype=np.float64)


def knowledge_lift(
    knowledge: dict[str, list[dict[str, Any]]],
    unseen: dict[str, list[dict[str, Any]]],
    metric: str,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """The lift on ``metric`` with its percentile bootstrap interval.

    ``{"metric", "value", "ci95", "knowledge_gain", "unseen_gain", "n_knowledge", "n_unseen",
    "uncorrected"}``; ``value`` None when no knowledge item has the metric.
    """
    k = _gains(
        [i.get(metric) for i in knowledge["base"]], [i.get(metric) for i in knowledge["tuned"]]
    )
    u = _gains([i.get(metric) for i in unseen["base"]], [i.get(metric) for i in unseen["tuned"]])
    out: dict[str, Any] = {
        "metric": metric,
        "n_knowledge": len(k),
        "n_unseen": len(u),
        "uncorrected": len(u) == 0,
        "knowledge_gain": float(k.mean()) if len(k) else None,
        "unseen_gain": float(u.mean()) if len(u) else None,
        "value": None,
        "ci95": None,
    }
    if not len(k):
        return out
    rng = np.random.default_rng(seed)
    k_means = k[rng.integers(0, len(k), size=(resamples, len(k)))].mean(axis=1)
    u_means = u[rng.integers(0, len(u), size=(resamples, len(u)))].mean(axis=1) if len(u) else 0.0
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(k_means - u_means, [tail, 100 - tail])
    out["value"] = out["knowledge_gain"] - (out["unseen_gain"] or 0.0)
    out["ci95"] = [float(low), float(high)]
    return out


def confident_rates(
    answers: list[str], token_f1: list[float], correct_f1: float
) -> dict[str, float | None]:
    """On unseen documents: ``confident`` (neither empty nor a refusal) and ``confident_wrong``
    (confident with token F1 under ``correct_f1``), as shares of the answers."""
    if not answers:
        return {"confident": None, "confident_wrong": None}
    confident = [bool(a.strip()) and not is_refusal(a) for a in answers]
    wrong = [c and f < correct_f1 for c, f in zip(confident, token_f1, strict=True)]
    return {
        "confident": sum(confident) / len(answers),
        "confident_wrong": sum(wrong) / len(answers),
    }


@dataclass(frozen=True)
class Degeneracy:
    """Answer shape of one side over the scored items, and what is wrong with it."""

    n: int
    empty_share: float
    distinct_share: float
    length_ratio: float | None  # median answer words / median reference words
    problems: tuple[str, ...]

    @property
    def degenerate(self) -> bool:
        return bool(self.problems)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "problems": list(self.problems), "degenerate": self.degenerate}


def degeneracy(answers: list[str], references: list[str], cfg: EvaluateConfig) -> Degeneracy:
    """Name what makes these answers degenerate, by ``cfg.degenerate_*``.

    ``degeneracy(["", ""], ["A b.", "C d."], EvaluateConfig()).problems`` →
    ``("2 of 2 answers are empty",)`` (and the length problem)
    """
    n = len(answers)
    if not n:
        return Degeneracy(0, 0.0, 1.0, None, ())
    stripped = [a.strip() for a in answers]
    empty = sum(not a for a in stripped)
    distinct = len({a.casefold() for a in stripped if a})
    ref_words = statistics.median(len(r.split()) for r in references) if references else 0
    ans_words = statistics.median(len(a.split()) for a in stripped)
    ratio = ans_words / ref_words if ref_words else None
    problems = []
    if empty / n > cfg.degenerate_max_empty_share:
        problems.append(f"{empty} of {n} answers are empty")
    non_empty = n - empty
    if non_empty and distinct / non_empty < cfg.degenerate_min_distinct_share:
        top = max({a.casefold() for a in stripped if a}, key=[a.casefold() for a in stripped].count)
        count = [a.casefold() for a in stripped].count(top)
        problems.append(
            f"{non_empty} answers hold {distinct} distinct strings ({top[:60]!r} ×{count})"
        )
    if ratio is not None and ratio < cfg.degenerate_min_length_ratio:
        problems.append(
            f"answers are far shorter than the references (median {ans_words:g} words vs "
            f"{ref_words:g})"
        )
    return Degeneracy(n, empty / n, distinct / max(non_empty, 1), ratio, tuple(problems))
