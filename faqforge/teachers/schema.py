"""The JSON schemas the teacher and the judge answer in, and their tolerant parsers.

``maxLength`` on every string lets a constrained decoder (vLLM's xgrammar) always finish
valid JSON, even from a model that would ramble. Every reply (the teacher's, the judge's, the
answer grader's) is read by ``load_object``, with ``json.loads(strict=False)``: xgrammar lets
control characters into strings. A reply that does not parse or fit raises TeacherError
``parse_error`` or ``schema_error`` with the raw text: never a silent ``[]``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from faqforge.config import stable_hash
from faqforge.teachers.base import Fact, TeacherError

CRITERIA = ("accuracy", "relevance", "clarity", "usefulness")
QUESTION_CHARS = 300
REASON_CHARS = 300  # a judge's reason, pair rating or answer grading alike


def schema_hash(schema: dict[str, Any]) -> str:
    return stable_hash(schema, length=12)


def qa_schema(n_facts: int, phrasings: int, max_answer_words: int) -> dict[str, Any]:
    """``{"facts": [{"answer", "questions": [2..phrasings]}]}`` with 1 to ``n_facts`` facts."""
    text = {"type": "string", "minLength": 1}
    fact = {
        "type": "object",
        "properties": {
            "answer": {**text, "maxLength": max(200, max_answer_words * 10)},
            "questions": {
                "type": "array",
                "items": {**text, "maxLength": QUESTION_CHARS},
                "minItems": 2,
                "maxItems": phrasings,
            },
        },
        "required": ["answer", "questions"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "facts": {"type": "array", "items": fact, "minItems": 1, "maxItems": n_facts}
        },
        "required": ["facts"],
        "additionalProperties": False,
    }


def load_object(text: str) -> dict[str, Any]:
    """The JSON object in a model's reply, also when fenced or wrapped in prose (an
    unconstrained server or grader adds both); else TeacherError ``parse_error``."""
    body = re.sub(r"^\s*```(?:json)?\s*|\s*```\s*$", "", text.strip())
    problem = "reply holds no JSON object"
    for whole, candidate in ((True, body), (False, body[body.find("{") : body.rfind("}") + 1])):
        try:
            data = json.loads(candidate, strict=False)
        except json.JSONDecodeError as exc:
            if whole:  # the decoder's own words go back to the model on a retry
                problem = f"reply is not JSON: {exc}"
            continue
        if isinstance(data, dict):
            return data
    raise TeacherError("parse_error", problem, raw=text)


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def parse_facts(text: str, n_facts: int) -> list[Fact]:
    """``'{"facts": [{"answer": "A.", "questions": ["Q?", "Q2?"]}]}'`` → ``[Fact("A.", ...)]``.

    Repeated questions within a fact count once; a fact needs one usable question (the
    schema asks for two or more; a fact asked one way is still training data).
    """
    data = load_object(text)
    items = data.get("facts")
    if not isinstance(items, list) or not 1 <= len(items) <= n_facts:
        raise TeacherError(
            "schema_error", f'expected {{"facts": [...]}} with 1 to {n_facts} items', raw=text
        )
    facts = []
    for i, item in enumerate(items):
        answer = _text(item.get("answer")) if isinstance(item, dict) else None
        raw_questions = item.get("questions") if isinstance(item, dict) else None
        questions = [_text(q) for q in raw_questions] if isinstance(raw_questions, list) else [None]
        if answer is None or not questions or None in questions:
            raise TeacherError(
                "schema_error",
                f"facts[{i}] needs a non-empty string answer and a list of non-empty questions",
                raw=text,
            )
        facts.append(Fact(answer, tuple(dict.fromkeys(q for q in questions if q))))
    return facts


def questions_schema(n: int) -> dict[str, Any]:
    """``{"questions": [...]}`` with exactly ``n`` strings (the repair of an ambiguous one)."""
    question = {"type": "string", "minLength": 1, "maxLength": QUESTION_CHARS}
    return {
        "type": "object",
        "properties": {
            "questions": {"type": "array", "items": question, "minItems": n, "maxItems": n}
        },
        "required": ["questions"],
        "additionalProperties": False,
    }


def parse_questions(text: str, n: int) -> list[str]:
    """``'{"questions": ["A?", "B?"]}'`` → ``["A?", "B?"]``, exactly ``n`` non-empty strings."""
    data = load_object(text)
    items = data.get("questions")
    if not isinstance(items, list) or len(items) != n or not all(_text(q) for q in items):
        raise TeacherError(
            "schema_error", f'expected {{"questions": [...]}} with {n} non-empty strings', raw=text
        )
    return [q.strip() for q in items]


@dataclass(frozen=True)
class Rating:
    """The judge's 1–10 marks for one pair; ``score`` is the weakest of the four."""

    accuracy: int
    relevance: int
    clarity: int
    usefulness: int
    reason: str

    @property
    def score(self) -> float:
        return float(min(self.accuracy, self.relevance, self.clarity, self.usefulness))


def judge_schema(n_pairs: int) -> dict[str, Any]:
    """``{"ratings": [{accuracy, relevance, clarity, usefulness, reason}]}``, one per pair."""
    mark = {"type": "integer", "minimum": 1, "maximum": 10}
    rating = {
        "type": "object",
        "properties": {
            **{c: mark for c in CRITERIA},
            "reason": {"type": "string", "minLength": 1, "maxLength": REASON_CHARS},
        },
        "required": [*CRITERIA, "reason"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "ratings": {
                "type": "array",
                "items": rating,
                "minItems": n_pairs,
                "maxItems": n_pairs,
            }
        },
        "required": ["ratings"],
        "additionalProperties": False,
    }


def parse_ratings(text: str, n_pairs: int) -> list[Rating]:
    """``'{"ratings": [{"accuracy": 9, ..., "reason": "ok"}]}'`` → ``[Rating(9, ...)]``."""
    data = load_object(text)
    items = data.get("ratings")
    if not isinstance(items, list) or len(items) != n_pairs:
        raise TeacherError(
            "schema_error", f'expected {{"ratings": [...]}} with {n_pairs} items', raw=text
        )
    ratings = []
    for i, item in enumerate(items):
        marks = [item.get(c) if isinstance(item, dict) else None for c in CRITERIA]
        reason = item.get("reason") if isinstance(item, dict) else None
        if not all(isinstance(m, int) and 1 <= m <= 10 for m in marks) or not isinstance(
            reason, str
        ):
            raise TeacherError(
                "schema_error",
                f"ratings[{i}] needs integer {', '.join(CRITERIA)} in 1..10 and a reason",
                raw=text,
            )
        ratings.append(Rating(*marks, reason=reason.strip()))  # type: ignore[arg-type,misc]
    return ratings
