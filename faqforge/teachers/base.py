"""What every teacher is: a model name, a prompt version, and chunk → question/answer pairs.

The generate stage keys its per-chunk cache on ``name`` and ``prompt_version``, so a
teacher must change one of them whenever what it writes for the same chunk could change.
Teachers do not cache, count or retry whole chunks; the generate stage does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from faqforge.records import Chunk


@dataclass(frozen=True)
class Usage:
    """Tokens billed for one chunk's reply, summed over every call it took (retries too)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@dataclass(frozen=True)
class TeacherReply:
    """The pairs a teacher wrote for one chunk, and the raw model text they were parsed from."""

    pairs: list[tuple[str, str]]
    usage: Usage = field(default_factory=Usage)
    raw: str = ""


class TeacherError(Exception):
    """A chunk the teacher could not answer usably.

    ``reason`` is a short rejection reason (``parse_error``, ``schema_error``,
    ``http_error``, ``no_pairs``); ``raw`` keeps whatever the model said, for inspection;
    ``usage`` the tokens spent on the failed attempt. Never put a secret in any of them.
    """

    def __init__(self, reason: str, detail: str, raw: str = "", usage: Usage | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.raw = raw
        self.usage = usage or Usage()


class Teacher(Protocol):
    """Writes question/answer pairs about one chunk. Implementations: extractive, openai."""

    name: str
    prompt_version: str

    async def generate(self, chunk: Chunk, n_pairs: int) -> TeacherReply:
        """Up to ``n_pairs`` pairs grounded in ``chunk``; raise TeacherError if unusable."""
        ...

    async def aclose(self) -> None:
        """Release connections bound to the running event loop (a later call reopens them)."""
        ...
