"""Run the judge over an eval set: a grade for every answer, pairwise verdicts in both orders.

Requests go out ``concurrency`` at a time through the teacher's chat backend (the same
client, retries and structured output as generation). Each parsed reply is cached by
(judge model, schema, messages, parameters), so re-judging unchanged answers asks nothing.
A failed request leaves ``None`` in its slot and a failure record with the raw reply; the
caller decides when failures are too many.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from faqforge.teachers.base import ChatBackend, TeacherError, Usage
from tasks.evaluate.cache import EvalCache
from tasks.evaluate.grader import (
    ANSWER_SCHEMA,
    PAIRWISE_SCHEMA,
    Grade,
    JudgePrompts,
    Preference,
    parse_grade,
    parse_preference,
    swap_outcome,
)


@dataclass(frozen=True)
class Item:
    id: str
    question: str
    reference: str


@dataclass
class JudgeRun:
    """Grades per side and item; per item the pairwise verdicts and the tuned outcome."""

    grades: dict[str, list[Grade | None]]
    verdicts: list[tuple[Preference | None, Preference | None]]
    failures: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    usage: Usage = field(default_factory=Usage)

    @property
    def outcomes(self) -> list[str | None]:
        return [swap_outcome(a.winner, b.winner) if a and b else None for a, b in self.verdicts]


class _Asker:
    def __init__(
        self,
        backend: ChatBackend,
        cache: EvalCache,
        concurrency: int,
        temperature: float,
        max_tokens: int,
        run: JudgeRun,
    ):
        self.backend, self.cache, self.run = backend, cache, run
        self.params = {"temperature": temperature, "max_tokens": max_tokens}
        self.limit = asyncio.Semaphore(concurrency)

    async def ask(
        self,
        item_id: str,
        kind: str,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        parse: Callable[[str], Any],
    ) -> Any:
        key = [self.backend.model, schema, messages, self.params]
        self.run.requests += 1
        if (hit := self.cache.get("judge", key)) is not None:
            try:
                return parse(hit["raw"])
            except TeacherError:
                pass  # a stricter parser than when cached: ask again
        async with self.limit:
            try:
                parsed, calls, raw = await _ask_json(
                    self.backend, messages, schema, parse, **self.params
                )
            except TeacherError as err:
                self.run.usage += sum(err.calls, Usage())
                self.run.failures.append(
                    {
                        "id": item_id,
                        "kind": kind,
                        "reason": err.reason,
                        "detail": err.detail,
                        "raw": err.raw,
                    }
                )
                return None
        self.run.usage += sum(calls, Usage())
        self.cache.put("judge", key, {"raw": raw})
        return parsed


async def _ask_json(backend: ChatBackend, messages, schema, parse, **params):  # type: ignore[no-untyped-def]
    from faqforge.teachers.structured import ask_json

    return await ask_json(backend, messages, schema, parse, **params)


async def judge_items(
    backend: ChatBackend,
    prompts: JudgePrompts,
    items: list[Item],
    answers: dict[str, list[str]],
    cache: EvalCache,
    *,
    concurrency: int,
    temperature: float,
    max_tokens: int,
) -> JudgeRun:
    """Grade every answer of every side; pairwise base vs tuned in both orders."""
    run = JudgeRun(grades={}, verdicts=[])
    asker = _Asker(backend, cache, concurrency, temperature, max_tokens, run)

    async def grade(side: str) -> list[Grade | None]:
        return list(
            await asyncio.gather(
                *(
                    asker.ask(
                        it.id,
                        f"grade:{side}",
                        prompts.grade_messages(it.question, it.reference, a),
                        ANSWER_SCHEMA,
                        parse_grade,
                    )
                    for it, a in zip(items, answers[side], strict=True)
                )
            )
        )

    async def compare(it: Item, base: str, tuned: str) -> tuple[Any, Any]:
        first = asker.ask(
            it.id,
            "pairwise:base-first",
            prompts.pair_messages(it.question, it.reference, base, tuned),
            PAIRWISE_SCHEMA,
            parse_preference,
        )
        second = asker.ask(
            it.id,
            "pairwise:tuned-first",
            prompts.pair_messages(it.question, it.reference, tuned, base),
            PAIRWISE_SCHEMA,
            parse_preference,
        )
        return tuple(await asyncio.gather(first, second))  # type: ignore[return-value]

    sides = list(answers)
    graded = await asyncio.gather(*(grade(s) for s in sides))
    run.grades = dict(zip(sides, graded, strict=True))
    run.verdicts = list(
        await asyncio.gather(
            *(
                compare(it, b, t)
                for it, b, t in zip(items, answers["base"], answers["tuned"], strict=True)
            )
        )
    )
    await backend.aclose()
    return run
