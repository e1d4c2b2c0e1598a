"""The answer grader (the teacher grading model answers in evaluation; not the pair rater of
the judge stage): a 1–10 score per answer and base-vs-tuned preference, both reference-guided.

Single-answer grading (``judge_answer`` prompt) scores each answer against the reference.
Pairwise preference (``judge_pairwise`` prompt) is asked twice per item, base as A then tuned
as A: a judge that prefers a position flips its verdict when the order flips, and a verdict
that does not survive the swap counts as a tie. Replies are JSON-schema constrained and parsed
tolerantly (code fences, prose around the object, ``"8"`` or ``8.0`` for 8, ``"Answer A"`` for
A); a reply still unusable after one retry is a counted failure keeping its raw text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from faqforge.prompts import Prompt, load_prompt
from faqforge.teachers.base import TeacherError
from faqforge.teachers.schema import REASON_CHARS, load_object

VERDICTS = ("A", "B", "tie")

ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reason": {"type": "string", "minLength": 1, "maxLength": REASON_CHARS},
        "score": {"type": "integer", "minimum": 1, "maximum": 10},
    },
    "required": ["reason", "score"],
    "additionalProperties": False,
}
PAIRWISE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reason": {"type": "string", "minLength": 1, "maxLength": REASON_CHARS},
        "winner": {"type": "string", "enum": list(VERDICTS)},
    },
    "required": ["reason", "winner"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Grade:
    score: int
    reason: str


@dataclass(frozen=True)
class Preference:
    winner: str  # "A", "B" or "tie"
    reason: str


def _reason(data: dict[str, Any]) -> str:
    reason = data.get("reason", "")
    return reason.strip() if isinstance(reason, str) else str(reason)


def parse_grade(text: str) -> Grade:
    """``'{"reason": "ok", "score": 8}'`` → ``Grade(8, "ok")``; ``"8/10"`` and ``8.0`` count."""
    data = load_object(text)
    raw = data.get("score")
    if isinstance(raw, str) and (m := re.fullmatch(r"\s*(\d+(?:\.0+)?)\s*(?:/\s*10)?\s*", raw)):
        raw = float(m.group(1))
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= 10:
        raise TeacherError("schema_error", f"score must be an integer 1..10, got {raw!r}", text)
    return Grade(raw, _reason(data))


_A = {"a", "answer a", "assistant a", "response a", "[[a]]", "1"}
_B = {"b", "answer b", "assistant b", "response b", "[[b]]", "2"}
_TIE = {"tie", "equal", "draw", "both", "neither", "none", "c", "[[c]]"}


def parse_preference(text: str) -> Preference:
    """``'{"reason": "…", "winner": "B"}'`` → ``Preference("B", "…")``; ``"Answer A"`` → A."""
    data = load_object(text)
    raw = data.get("winner")
    word = raw.strip().strip(".").lower() if isinstance(raw, str) else None
    for verdict, words in (("A", _A), ("B", _B), ("tie", _TIE)):
        if word in words:
            return Preference(verdict, _reason(data))
    raise TeacherError("schema_error", f'winner must be "A", "B" or "tie", got {raw!r}', text)


def swap_outcome(base_first: str, tuned_first: str) -> str:
    """The tuned model's outcome from two verdicts: ``"win"``, ``"tie"`` or ``"loss"``.

    ``base_first`` judged A=base, B=tuned; ``tuned_first`` judged A=tuned, B=base. Only a
    preference both orders agree on counts; disagreement (position bias) is a tie.
    ``swap_outcome("B", "A") == "win"``; ``swap_outcome("A", "A") == "tie"``.
    """
    first = {"A": "base", "B": "tuned", "tie": "tie"}[base_first]
    second = {"A": "tuned", "B": "base", "tie": "tie"}[tuned_first]
    if first != second or first == "tie":
        return "tie"
    return "win" if first == "tuned" else "loss"


def rates(outcomes: list[str]) -> dict[str, float | None]:
    """``{"win", "tie", "loss"}`` shares of the outcomes; None each when there are none."""
    n = len(outcomes)
    return {k: (outcomes.count(k) / n if n else None) for k in ("win", "tie", "loss")}


@dataclass(frozen=True)
class JudgePrompts:
    answer: Prompt
    pairwise: Prompt

    @classmethod
    def load(cls) -> JudgePrompts:
        return cls(load_prompt("judge_answer"), load_prompt("judge_pairwise"))

    @property
    def versions(self) -> dict[str, str]:
        return {"judge_answer": self.answer.version, "judge_pairwise": self.pairwise.version}

    def grade_messages(self, question: str, reference: str, answer: str) -> list[dict[str, str]]:
        user = self.answer.render_user(
            question=question, reference=reference, answer=answer or "(empty answer)"
        )
        return [
            {"role": "system", "content": self.answer.system},
            {"role": "user", "content": user},
        ]

    def pair_messages(self, question: str, reference: str, a: str, b: str) -> list[dict[str, str]]:
        user = self.pairwise.render_user(
            question=question,
            reference=reference,
            answer_a=a or "(empty answer)",
            answer_b=b or "(empty answer)",
        )
        return [
            {"role": "system", "content": self.pairwise.system},
            {"role": "user", "content": user},
        ]
