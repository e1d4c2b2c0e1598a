"""What an evaluation means: the knowledge lift and its interval, abstention on unseen
documents, degenerate output named, key-term recall, and the gate that uses them."""

from __future__ import annotations

import pytest

from faqforge.config import EvaluateConfig
from tasks.evaluate.metrics import key_term_recall, key_terms
from tasks.evaluate.probes import confident_rates, degeneracy, knowledge_lift
from tasks.promote import gate

CFG = EvaluateConfig()


def scores(values: list[float], metric: str = "token_f1") -> list[dict[str, float]]:
    return [{metric: v} for v in values]


def probe(base: list[float], tuned: list[float]) -> dict[str, list[dict[str, float]]]:
    return {"base": scores(base), "tuned": scores(tuned)}


def test_lift_subtracts_what_style_alone_gained():
    knowledge = probe([0.1] * 20, [0.7] * 20)  # +0.6 on trained facts
    unseen = probe([0.1] * 10, [0.3] * 10)  # +0.2 on documents never seen: style
    lift = knowledge_lift(knowledge, unseen, "token_f1", 1000, 0)
    assert lift["knowledge_gain"] == pytest.approx(0.6)
    assert lift["unseen_gain"] == pytest.approx(0.2)
    assert lift["value"] == pytest.approx(0.4)
    assert lift["ci95"] == pytest.approx([0.4, 0.4])  # no spread in these gains
    assert (lift["n_knowledge"], lift["n_unseen"], lift["uncorrected"]) == (20, 10, False)


def test_lift_interval_is_paired_and_covers_noise():
    import random

    rng = random.Random(1)
    base = [rng.random() for _ in range(40)]
    # Tuned = base + 0.1 per item: paired, the gain is exact, however noisy the items.
    knowledge = probe(base, [b + 0.1 for b in base])
    unseen = probe(base[:20], [b + rng.uniform(-0.2, 0.2) for b in base[:20]])
    lift = knowledge_lift(knowledge, unseen, "token_f1", 2000, 0)
    lo, hi = lift["ci95"]
    assert lo < lift["value"] < hi and hi - lo < 0.15
    assert knowledge_lift(knowledge, unseen, "token_f1", 2000, 0) == lift  # seeded


def test_lift_without_unseen_items_is_flagged_uncorrected():
    lift = knowledge_lift(probe([0.0], [0.5]), probe([], []), "token_f1", 100, 0)
    assert lift["uncorrected"] and lift["value"] == pytest.approx(0.5)
    empty = knowledge_lift(probe([], []), probe([0.1], [0.2]), "token_f1", 100, 0)
    assert empty["value"] is None and empty["ci95"] is None


def test_confident_answers_on_unseen_documents():
    answers = ["The chunk stage cuts documents.", "I don't know.", "", "It runs nightly."]
    rates = confident_rates(answers, [0.9, 0.0, 0.0, 0.1], correct_f1=0.5)
    assert rates == {"confident": 0.5, "confident_wrong": 0.25}  # "It runs nightly." is wrong
    assert confident_rates([], [], 0.5) == {"confident": None, "confident_wrong": None}


REFS = ["The dedup stage removes repeated pairs."] * 4


@pytest.mark.parametrize(
    ("answers", "problem"),
    [
        (["", "", "", "The dedup stage drops repeats."], "3 of 4 answers are empty"),
        (["The split stage is the teacher."] * 4, "4 answers hold 1 distinct strings"),
        (["Dedup.", "Pairs.", "Stage.", "Repeats."], "far shorter than the references"),
    ],
)
def test_degenerate_output_is_named(answers, problem):
    shape = degeneracy(answers, REFS, CFG)
    assert shape.degenerate and any(problem in p for p in shape.problems), shape.problems


def test_varied_answers_of_reference_length_are_not_degenerate():
    answers = [f"The dedup stage removes pairs {i} times over." for i in range(4)]
    assert not degeneracy(answers, REFS, CFG).degenerate


@pytest.mark.parametrize(
    ("pred", "ref", "question", "expected"),
    [
        ("It uses LSH.", "Dedup uses MinHash LSH.", "What does dedup use?", 0.5),
        # the question's own words are no evidence: "dedup" is not a key term here
        ("Dedup.", "Dedup uses MinHash LSH.", "What does dedup use?", 0.0),
        ("minhash and lsh", "Dedup uses MinHash LSH.", "What does dedup use?", 1.0),
        # stemmed: "caches" answers "cached"
        ("It caches chunks.", "Chunks are cached.", "What happens to chunks?", 1.0),
        # a reference with nothing but the question's words has no key terms
        ("Anything.", "Dedup is used.", "What is dedup used for?", None),
    ],
)
def test_key_term_recall(pred, ref, question, expected):
    assert key_term_recall(pred, ref, question) == expected


def test_key_terms_keep_numbers_and_drop_stop_words():
    assert key_terms("The eval split holds 20% of documents.", "What is the eval split?") == {
        "hold",
        "20",
        "document",
    }


BASE = {"token_f1": 0.1, "rouge_l": 0.1, "judge_score": None}
TUNED = {"token_f1": 0.6, "rouge_l": 0.5, "judge_score": None}
NO_JUDGE = {"win": None, "tie": None, "loss": None}
LIFT = {"metric": "token_f1", "value": 0.3, "ci95": [0.2, 0.4]}


def test_gate_promotes_a_lift_above_zero():
    result = gate(BASE, TUNED, NO_JUDGE, None, CFG, lift=LIFT, degenerate=[])
    assert result.promoted
    assert any(c.startswith("pass: knowledge lift (token_f1) +0.300") for c in result.checks)


@pytest.mark.parametrize(
    ("lift", "degenerate", "failed"),
    [
        # the interval reaches zero: the gain may be noise
        ({**LIFT, "value": 0.1, "ci95": [-0.05, 0.25]}, [], "lower bound must exceed"),
        ({"metric": "token_f1", "value": None, "ci95": None}, [], "no knowledge-probe item"),
        (LIFT, ["64 answers hold 30 distinct strings"], "degenerate output: 64 answers"),
    ],
)
def test_gate_refuses_without_a_real_lift_or_with_degenerate_output(lift, degenerate, failed):
    result = gate(BASE, TUNED, NO_JUDGE, None, CFG, lift=lift, degenerate=degenerate)
    assert not result.promoted
    assert any(failed in f for f in result.failed), result.failed
