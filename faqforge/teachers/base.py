"""What every teacher is: a model name, a prompt version, and chunk → question/answer pairs.

The generate stage keys its per-chunk cache on ``name``, ``prompt_version`` and
``schema_version``, so a teacher must change one of them whenever what it writes for the same
chunk could change. Teachers do not cache, count or budget whole chunks; the generate stage
does. A ``ChatBackend`` is one way to reach a model (HTTP or in-process); teachers and the
judge share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from faqforge.records import Chunk


@dataclass(frozen=True)
class Usage:
    """Tokens billed for one request (from the API's ``usage``), or a sum of requests."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def total_usage(calls: Sequence[Usage]) -> Usage:
    return sum(calls, Usage())


@dataclass(frozen=True)
class Fact:
    """One answer and the differently worded questions it answers: its phrasings.

    The knowledge probe holds one phrasing out of training and asks it after the others
    were trained on, so a teacher writes two or three per fact (one per concept was the
    motivating write-up's diagnosed failure).
    """

    answer: str
    questions: tuple[str, ...]


@dataclass(frozen=True)
class TeacherReply:
    """The facts a teacher wrote for one chunk, the raw text, and one Usage per request."""

    facts: list[Fact]
    calls: tuple[Usage, ...] = ()
    raw: str = ""

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """Every (question, answer): each phrasing of each fact."""
        return [(q, f.answer) for f in self.facts for q in f.questions]

    @property
    def usage(self) -> Usage:
        return total_usage(self.calls)


class TeacherError(Exception):
    """A chunk the teacher could not answer usably.

    ``reason`` is a short rejection reason (``parse_error``, ``schema_error``,
    ``http_error``, ``engine_error``, ``no_pairs``); ``raw`` keeps whatever the model said,
    for inspection; ``calls`` the requests spent on it. Never put a secret in any of them.
    """

    def __init__(
        self, reason: str, detail: str, raw: str = "", calls: Sequence[Usage] = ()
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.raw = raw
        self.calls = tuple(calls)

    @property
    def usage(self) -> Usage:
        return total_usage(self.calls)


@dataclass(frozen=True)
class Completion:
    """One model reply: its text, the request's usage, and why generation stopped."""

    text: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None


class ChatBackend(Protocol):
    """One chat request constrained by a JSON schema. Implementations: openai, vllm."""

    model: str

    async def chat(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        *,
        temperature: float,
        max_tokens: int,
    ) -> Completion:
        """The reply; raise TeacherError (``http_error``/``engine_error``) when none came."""
        ...

    async def aclose(self) -> None: ...


class Teacher(Protocol):
    """Writes facts (an answer, several phrasings) about one chunk: extractive, llm."""

    name: str
    prompt_version: str

    def schema_version(self, n_facts: int) -> str:
        """A hash of the reply schema asked for (part of the cache key)."""
        ...

    async def generate(self, chunk: Chunk, n_facts: int) -> TeacherReply:
        """Up to ``n_facts`` facts grounded in ``chunk``, each with 2+ phrasings; raise
        TeacherError if unusable."""
        ...

    async def aclose(self) -> None:
        """Release connections bound to the running event loop (a later call reopens them)."""
        ...
