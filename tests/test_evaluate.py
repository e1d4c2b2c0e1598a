"""Evaluation: metrics on commented cases (with a rouge-score parity check), the report, and the
evaluate task on a run trained on planted facts, where the tuned model must beat its base."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tasks.evaluate as ev
from faqforge.config import EvaluateConfig


@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [
        ("Paris", "paris", 1.0),  # case
        ("The Eiffel Tower.", "eiffel tower", 1.0),  # article and punctuation
        ("  an   apple ", "apple", 1.0),  # whitespace and article
        ("Paris, France", "Paris France", 1.0),  # punctuation inside
        ("Paris", "Lyon", 0.0),  # different answer
        ("theatre", "atre", 0.0),  # "the" only as a whole word
        ("", "", 1.0),  # both empty
        ("Paris is nice", "Paris", 0.0),  # extra words are not a match
    ],
)
def test_exact_match(pred, ref, expected):
    assert ev.exact_match(pred, ref) == expected


@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [
        ("the cat sat on the mat", "the cat sat on the mat", 1.0),  # identical
        ("", "the cat sat", 0.0),  # nothing predicted
        ("dog", "the cat sat", 0.0),  # no overlap
        # LCS "the cat" = 2 words: P = 2/2, R = 2/3, F = 0.8
        ("the cat", "the cat sat", 0.8),
        # LCS "cat sat" in order despite the inserted word: P = 2/3, R = 2/2, F = 0.8
        ("cat quietly sat", "cat sat", 0.8),
        ("Cats sitting", "cat sits", 1.0),  # Porter stemming: cats→cat, sitting/sits→sit
    ],
)
def test_rouge_l(pred, ref, expected):
    assert ev.rouge_l(pred, ref) == pytest.approx(expected)


def test_rouge_l_matches_rouge_score():
    from rouge_score import rouge_scorer

    reference = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    cases = [
        ("Refunds are paid within 30 days.", "Refunds are paid in thirty days."),
        ("Use the VPN client", "Connect with the corporate VPN client before logging in."),
        ("Badges are issued by reception on day one", "Reception issues badges."),
        ("ünïcode wörds", "unicode words"),
    ]
    for pred, ref in cases:
        assert ev.rouge_l(pred, ref) == reference.score(ref, pred)["rougeL"].fmeasure


def test_score_answers_means():
    preds, refs = ["Paris", "the cat", "x"], ["paris", "the cat sat", "y"]
    scores = ev.score_answers(preds, refs)
    assert scores["exact_match"] == pytest.approx(1 / 3)
    assert scores["rouge_l"] == pytest.approx((1.0 + 0.8 + 0.0) / 3)
    assert ev.score_answers([], []) == {"exact_match": 0.0, "rouge_l": 0.0}
    with pytest.raises(ValueError, match="2 predictions for 1"):
        ev.score_answers(["a", "b"], ["a"])


def test_render_report():
    metrics = {
        "base": {"exact_match": 0.0, "rouge_l": 0.1},
        "tuned": {"exact_match": 0.5, "rouge_l": 0.75},
        "n": 25,
        "dataset_version": "ds-1",
        "adapter": "runs/ft-1/adapter",
        "base_model": "tiny",
    }
    rows = [
        {"question": f"q{i} | pipe", "reference": "line\nbreak", "base": "", "tuned": "t"}
        for i in range(25)
    ]
    md = ev.render_report(metrics, rows)
    assert "| rouge_l | 0.100 | 0.750 | +0.650 |" in md
    assert "| exact_match | 0.000 | 0.500 | +0.500 |" in md
    assert "## Answers (first 20 of 25)" in md
    assert "| q0 \\| pipe | line break | ∅ | t |" in md  # escaped pipe, joined lines, empty mark
    assert "q19" in md and "q20" not in md


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> dict:
    """The run test_finetune trains on planted facts (trained here if that module did not run);
    its eval split repeats training questions, so a tuned model that learned must beat base."""
    from test_finetune import train_planted

    return train_planted(tmp_path_factory)


@pytest.mark.slow
def test_generation_is_batch_independent(planted):
    questions = ["What colour is the kettle?", "What colour is the umbrella?", "Hi?"]
    base, adapter = planted["cfg"].base_model, planted["summary"]["adapter_dir"]
    prompt = planted["cfg"].system_prompt
    batched = ev.generate_answers(
        base, adapter, questions, EvaluateConfig(batch_size=3, max_new_tokens=16), prompt
    )
    single = ev.generate_answers(
        base, adapter, questions, EvaluateConfig(batch_size=1, max_new_tokens=16), prompt
    )
    assert batched == single  # left padding does not change greedy answers
    assert batched[0] == "The kettle is red."  # stops at <|eot_id|>, special tokens dropped


@pytest.mark.slow
def test_evaluate_task_tuned_beats_base(planted):
    run_dir = Path(planted["summary"]["run_dir"])
    result = ev.evaluate.fn(str(run_dir), EvaluateConfig(max_items=6), str(planted["ws"]))
    m = result["metrics"]
    print(f"\nbase {m['base']}  tuned {m['tuned']}")
    assert m["tuned"]["rouge_l"] > m["base"]["rouge_l"] + 0.3
    assert m["tuned"]["exact_match"] >= 0.5
    assert m["n"] == 6 and m["dataset_version"] == "ds-planted"
    assert m["adapter"] == str(run_dir / "adapter")

    out = run_dir / "eval"
    assert result["report"] == str(out / "report.md")
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "metrics.json",
        "predictions.jsonl",
        "report.md",
    ]
    assert json.loads((out / "metrics.json").read_text()) == m
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["dataset_version"], manifest["adapter"]) == ("ds-planted", m["adapter"])
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and {"question", "reference", "base", "tuned"} <= rows[0].keys()
    assert "| rouge_l |" in (out / "report.md").read_text()
