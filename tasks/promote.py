"""The promotion gate: an adapter becomes ``runs/CHAMPION`` only if it beats what it replaces.

In order: its answers must not be degenerate (empty, mostly repeated, far too short); the
knowledge lift's 95% interval must lie above ``gate_min_lift`` (fine-tuning taught facts,
beyond what answer style explains); on the knowledge probe it must beat its own base model by
``gate_margins`` on every metric that was measured (strictly: a gain equal to the margin is
not enough), win more pairwise comparisons than it loses by ``gate_min_win_margin`` when a
judge ran, and beat the current champion, scored on the same items, by ``champion_margins``.
Every check leaves a line saying why, so a report can tell a person exactly what held the
adapter back. A metric that was not measured (no judge) is skipped with a note; a gate that
could check nothing does not promote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class GateResult:
    promoted: bool = True
    checks: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def check(self, ok: bool, line: str) -> None:
        self.checks.append(("pass: " if ok else "FAIL: ") + line)
        if not ok:
            self.promoted = False
            self.failed.append(line)


def _margins(
    result: GateResult,
    tuned: dict[str, Any],
    other: dict[str, Any],
    margins: dict[str, float],
    against: str,
) -> int:
    """Check ``tuned − other > margin`` per metric; return how many could be checked."""
    checked = 0
    for metric, margin in margins.items():
        t, o = tuned.get(metric), other.get(metric)
        if t is None or o is None:
            result.checks.append(f"skip: {metric} vs {against} (not measured)")
            continue
        checked += 1
        gain = t - o
        result.check(
            gain > margin,
            f"{metric} {t:.3f} vs {against} {o:.3f}: gain {gain:+.3f} must exceed {margin:+.3f}",
        )
    return checked


def gate(
    base: dict[str, Any],
    tuned: dict[str, Any],
    pairwise: dict[str, float | None],
    champion: dict[str, Any] | None,
    cfg: Any,
    *,
    lift: dict[str, Any],
    degenerate: list[str],
) -> GateResult:
    """Decide promotion from the knowledge probe's means; ``champion`` is the champion's
    means on the same items (None: there is no other champion); ``lift`` is
    ``evaluate.probes.knowledge_lift``; ``degenerate`` the tuned side's problems. ``cfg`` is an
    EvaluateConfig."""
    result = GateResult()
    result.check(not degenerate, "degenerate output: " + ("; ".join(degenerate) or "none"))
    ci = lift.get("ci95")
    if ci is None:
        result.check(False, "knowledge lift: no knowledge-probe item was scored")
    else:
        result.check(
            ci[0] > cfg.gate_min_lift,
            f"knowledge lift ({lift['metric']}) {lift['value']:+.3f} [{ci[0]:+.3f}, "
            f"{ci[1]:+.3f}]: lower bound must exceed {cfg.gate_min_lift:+.3f}",
        )
    checked = int(ci is not None) + _margins(result, tuned, base, cfg.gate_margins, "base")
    win, loss = pairwise.get("win"), pairwise.get("loss")
    if win is None or loss is None:
        result.checks.append("skip: pairwise win rate (no judge)")
    else:
        checked += 1
        result.check(
            win - loss > cfg.gate_min_win_margin,
            f"pairwise win {win:.3f} - loss {loss:.3f} must exceed {cfg.gate_min_win_margin:+.3f}",
        )
    if champion is not None:
        checked += _margins(result, tuned, champion, cfg.champion_margins, "champion")
    if checked == 0:
        result.check(False, "no gate metric was measured")
    return result
