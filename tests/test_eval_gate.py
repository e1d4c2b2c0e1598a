"""Bootstrap intervals and the promotion gate on small hand-made score sets."""

from __future__ import annotations

import pytest

from faqforge.config import EvaluateConfig
from tasks.evaluate.intervals import bootstrap_ci, metric_intervals, outcome_intervals
from tasks.promote import gate


def test_bootstrap_is_seeded_and_brackets_the_mean():
    values = [0.0, 1.0] * 20  # mean 0.5
    low, high = bootstrap_ci(values, 1000, seed=0)
    assert low < 0.5 < high and high - low < 0.4
    assert bootstrap_ci(values, 1000, seed=0) == [low, high]  # same seed, same interval
    assert bootstrap_ci([0.7] * 5, 1000, seed=0) == pytest.approx([0.7, 0.7])  # no spread
    assert bootstrap_ci([], 1000, seed=0) is None
    narrow = bootstrap_ci([0.0, 1.0] * 200, 1000, seed=0)
    assert narrow[1] - narrow[0] < high - low  # more items, tighter interval


def test_paired_delta_interval_sees_a_consistent_gain():
    # Tuned is 0.1 better on every item while items vary widely: the paired delta interval is
    # exactly [0.1, 0.1] although the two means' own intervals overlap.
    base = [{"m": v} for v in (0.0, 0.2, 0.5, 0.8, 0.3, 0.6)]
    tuned = [{"m": it["m"] + 0.1} for it in base]
    ci = metric_intervals(base, tuned, ("m",), 1000, 0)
    assert ci["delta"]["m"] == pytest.approx([0.1, 0.1])
    assert ci["tuned"]["m"][0] < ci["base"]["m"][1]  # the unpaired intervals overlap
    none = metric_intervals([{"m": None}], [{"m": None}], ("m",), 1000, 0)
    assert none == {"base": {"m": None}, "tuned": {"m": None}, "delta": {"m": None}}


def test_outcome_intervals():
    ci = outcome_intervals(["win"] * 8 + ["loss"] * 2, 1000, 0)
    assert ci["win"][0] < 0.8 < ci["win"][1] and ci["tie"] == [0.0, 0.0]


BASE = {"exact_match": 0.0, "token_f1": 0.2, "rouge_l": 0.2, "judge_score": 3.0}
BETTER = {"exact_match": 0.3, "token_f1": 0.5, "rouge_l": 0.5, "judge_score": 7.0}
NO_JUDGE = {"win": None, "tie": None, "loss": None}
CFG = EvaluateConfig(
    gate_margins={"rouge_l": 0.05, "judge_score": 1.0}, champion_margins={"rouge_l": 0.01}
)
# The lift and answer-shape checks pass here; tests/test_eval_probes.py covers them.
OK = {"lift": {"metric": "token_f1", "value": 0.3, "ci95": [0.2, 0.4]}, "degenerate": []}


def test_gate_promotes_a_clear_gain():
    result = gate(BASE, BETTER, {"win": 0.7, "tie": 0.2, "loss": 0.1}, None, CFG, **OK)
    assert result.promoted and result.failed == []
    assert any(c.startswith("pass: rouge_l 0.500 vs base 0.200") for c in result.checks)


def test_gate_holds_back_and_says_why():
    # judge score gains only 0.5 of the required 1.0; pairwise loses more than it wins
    tuned = {**BETTER, "judge_score": 3.5}
    result = gate(BASE, tuned, {"win": 0.2, "tie": 0.3, "loss": 0.5}, None, CFG, **OK)
    assert not result.promoted
    assert len(result.failed) == 2
    assert "judge_score 3.500 vs base 3.000" in result.failed[0]
    assert "pairwise win 0.200 - loss 0.500" in result.failed[1]


def test_gain_equal_to_margin_is_not_enough():
    cfg = EvaluateConfig(gate_margins={"rouge_l": 0.0})
    assert not gate(BASE, {**BASE}, NO_JUDGE, None, cfg, **OK).promoted  # no gain at all


def test_gate_without_judge_skips_judge_checks():
    tuned = {**BETTER, "judge_score": None}
    result = gate({**BASE, "judge_score": None}, tuned, NO_JUDGE, None, CFG, **OK)
    assert result.promoted
    assert "skip: judge_score vs base (not measured)" in result.checks
    assert "skip: pairwise win rate (no judge)" in result.checks


def test_gate_needs_to_beat_the_champion():
    champion = {**BETTER, "rouge_l": 0.495}  # tuned 0.500 is +0.005, margin is 0.01
    result = gate(BASE, BETTER, NO_JUDGE, champion, CFG, **OK)
    assert not result.promoted
    assert result.failed == [
        "rouge_l 0.500 vs champion 0.495: gain +0.005 must exceed +0.010"
    ]  # the base checks passed; only the champion held it back


def test_gate_that_measured_nothing_does_not_promote():
    cfg = EvaluateConfig(gate_margins={"judge_score": 0.0}, champion_margins={})
    no_lift = {"metric": "token_f1", "value": None, "ci95": None}
    base, better = BASE | {"judge_score": None}, BETTER | {"judge_score": None}
    result = gate(base, better, NO_JUDGE, None, cfg, lift=no_lift, degenerate=[])
    assert not result.promoted and result.failed == [
        "knowledge lift: no knowledge-probe item was scored",
        "no gate metric was measured",
    ]
