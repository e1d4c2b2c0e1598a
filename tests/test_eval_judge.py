"""The evaluation judge: tolerant parsing of recorded replies, the position-swap rule, and the
judging run (retry with the error fed back, failures kept with raw text, cache) on a scripted
chat backend. Real server output is parsed in the vllm tier (test_eval_vllm.py)."""

from __future__ import annotations

import asyncio
import json

import pytest

from faqforge.teachers.base import Completion, TeacherError, Usage
from tasks.evaluate.cache import EvalCache
from tasks.evaluate.grader import (
    ANSWER_SCHEMA,
    JudgePrompts,
    parse_grade,
    parse_preference,
    rates,
    swap_outcome,
)
from tasks.evaluate.grading import Item, judge_items

# Replies as judges actually send them: constrained JSON, fenced JSON from a chat model with no
# structured output, prose around the object, numbers as strings or floats.
GRADES = [
    ('{"reason": "Matches the reference.", "score": 9}', 9, "Matches the reference."),
    ('```json\n{"reason": "Close", "score": 7}\n```', 7, "Close"),
    ('Here is my verdict:\n{"score": "8/10", "reason": "ok"}\nThanks!', 8, "ok"),
    ('{"reason":"line\nbreak","score":3.0}', 3, "line\nbreak"),  # control char (xgrammar)
    ('{"score": 10}', 10, ""),  # reason missing: still a score
]


@pytest.mark.parametrize(("raw", "score", "reason"), GRADES)
def test_parse_grade(raw, score, reason):
    grade = parse_grade(raw)
    assert (grade.score, grade.reason) == (score, reason)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("I would give it an eight.", "parse_error"),  # no JSON at all
        ('{"reason": "x", "score": 11}', "schema_error"),  # out of range
        ('{"reason": "x", "score": 7.5}', "schema_error"),  # not an integer
        ('{"reason": "x", "score": true}', "schema_error"),  # bool is not a score
        ('["score", 5]', "parse_error"),  # not an object
    ],
)
def test_parse_grade_rejects(raw, error):
    with pytest.raises(TeacherError) as exc:
        parse_grade(raw)
    assert exc.value.reason == error and exc.value.raw == raw  # raw text kept


@pytest.mark.parametrize(
    ("raw", "winner"),
    [
        ('{"reason": "B is correct", "winner": "B"}', "B"),
        ('{"winner": "Answer A", "reason": "A cites the reference"}', "A"),
        ('{"winner": "[[C]]", "reason": "same"}', "tie"),  # MT-Bench's tie mark
        ('{"winner": "Tie.", "reason": "equal"}', "tie"),
        ('{"winner": "a", "reason": ""}', "A"),
    ],
)
def test_parse_preference(raw, winner):
    assert parse_preference(raw).winner == winner


def test_parse_preference_rejects_unknown_winner():
    with pytest.raises(TeacherError, match="winner must be"):
        parse_preference('{"winner": "both are bad", "reason": "x"}')


@pytest.mark.parametrize(
    ("base_first", "tuned_first", "outcome"),
    [
        ("B", "A", "win"),  # tuned preferred in both orders
        ("A", "B", "loss"),  # base preferred in both orders
        ("A", "A", "tie"),  # always the first answer: position bias, not preference
        ("B", "B", "tie"),  # always the second answer
        ("tie", "A", "tie"),  # one order undecided
        ("tie", "tie", "tie"),
    ],
)
def test_swap_outcome(base_first, tuned_first, outcome):
    assert swap_outcome(base_first, tuned_first) == outcome


def test_rates():
    assert rates(["win", "win", "tie", "loss"]) == {"win": 0.5, "tie": 0.25, "loss": 0.25}
    assert rates([]) == {"win": None, "tie": None, "loss": None}


def test_prompts_are_versioned_files():
    prompts = JudgePrompts.load()
    assert set(prompts.versions) == {"judge_answer", "judge_pairwise"}
    assert all(len(v) == 12 for v in prompts.versions.values())
    msgs = prompts.pair_messages("Q?", "Ref.", "first", "")
    assert "Answer A:\nfirst" in msgs[1]["content"]
    assert "Answer B:\n(empty answer)" in msgs[1]["content"]


class ScriptedJudge:
    """A chat backend that answers like a judge: grades by the answer's text, and a pairwise
    preference for the answer containing ``good`` (or, ``biased``, always for A)."""

    model = "scripted-judge"

    def __init__(self, biased: bool = False, malformed_once: bool = False):
        self.biased = biased
        self.malformed_once = malformed_once
        self.requests: list[list[dict[str, str]]] = []

    async def chat(self, messages, schema, *, temperature, max_tokens):
        self.requests.append(messages)
        user = messages[1]["content"]
        if self.malformed_once:
            self.malformed_once = False
            return Completion("Sure! The score is high.", Usage(10, 5), "stop")
        if schema is ANSWER_SCHEMA:
            answer = user.split("Assistant's answer:\n", 1)[1]
            if "NONSENSE" in answer:
                return Completion("no idea", Usage(10, 2), "stop")  # unusable, twice
            score = 9 if "good" in answer else 2
            return Completion(json.dumps({"reason": "r", "score": score}), Usage(10, 5), "stop")
        a = user.split("Answer A:\n", 1)[1].split("\n\nAnswer B:", 1)[0]
        winner = "A" if self.biased or "good" in a else "B"
        return Completion(json.dumps({"reason": "r", "winner": winner}), Usage(10, 5), "stop")

    async def aclose(self):
        pass


def judge(backend, tmp_path, answers):
    items = [Item(f"q{i}", f"Question {i}?", "Reference.") for i in range(len(answers["base"]))]
    cache = EvalCache(tmp_path / "cache")
    run = asyncio.run(
        judge_items(backend, JudgePrompts.load(), items, answers, cache,
                    concurrency=4, temperature=0.0, max_tokens=64)
    )  # fmt: skip
    return run, cache


def test_judge_items_grades_and_swaps(tmp_path):
    answers = {"base": ["bad", "good too", "bad"], "tuned": ["good", "bad", "good"]}
    run, _ = judge(ScriptedJudge(), tmp_path, answers)
    assert [g.score for g in run.grades["tuned"]] == [9, 2, 9]
    assert [g.score for g in run.grades["base"]] == [2, 9, 2]
    assert run.outcomes == ["win", "loss", "win"]
    assert run.requests == 3 * 2 + 3 * 2 and run.failures == []
    assert run.usage == Usage(120, 60)


def test_position_biased_judge_gives_only_ties(tmp_path):
    answers = {"base": ["bad", "good"], "tuned": ["good", "bad"]}
    run, _ = judge(ScriptedJudge(biased=True), tmp_path, answers)
    assert run.outcomes == ["tie", "tie"]


def test_unusable_reply_is_retried_then_kept_as_failure(tmp_path):
    backend = ScriptedJudge(malformed_once=True)
    answers = {"base": ["NONSENSE"], "tuned": ["good"]}
    run, _ = judge(backend, tmp_path, answers)
    # the first (malformed) reply was asked again with the error fed back
    assert any("not usable" in m[-1]["content"] for m in backend.requests if len(m) == 4)
    assert run.grades["base"] == [None] and run.grades["tuned"][0].score == 9
    [failure] = run.failures
    assert failure["id"] == "q0" and failure["kind"] == "grade:base"
    assert "no idea" in failure["raw"]  # both raw replies kept for inspection


def test_verdicts_are_cached(tmp_path):
    answers = {"base": ["bad", "good"], "tuned": ["good", "bad"]}
    first, cache = judge(ScriptedJudge(), tmp_path, answers)
    backend = ScriptedJudge()
    second, cache = judge(backend, tmp_path, answers)
    assert backend.requests == [] and cache.hits == 8
    assert second.outcomes == first.outcomes
    assert second.usage == Usage()  # nothing spent on a cached verdict
