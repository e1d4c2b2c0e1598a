"""Ask a backend for JSON, and once more with the error fed back when the reply is unusable.

Shared by the teacher and the judge. A second unusable reply raises TeacherError keeping
both raw replies and every request's usage, so the rejection shows what the model said and
the ledger what it cost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from faqforge.teachers.base import ChatBackend, Completion, TeacherError, Usage

T = TypeVar("T")
RETRY_MARKER = "\n--- retry ---\n"


def _parse(parse: Callable[[str], T], reply: Completion, max_tokens: int) -> T:
    try:
        return parse(reply.text)
    except TeacherError as err:
        if reply.finish_reason == "length":  # cut off mid-JSON: say so, with the fix
            err.detail += f" (reply cut at max_tokens={max_tokens}; raise it)"
        raise


async def _send(
    backend: ChatBackend, messages: list[dict[str, str]], schema: dict[str, Any],
    calls: list[Usage], temperature: float, max_tokens: int,
) -> Completion:  # fmt: skip
    try:
        reply = await backend.chat(messages, schema, temperature=temperature, max_tokens=max_tokens)
    except TeacherError as err:
        err.calls = tuple(calls)
        raise
    calls.append(reply.usage)
    return reply


async def ask_json(
    backend: ChatBackend,
    messages: list[dict[str, str]],
    schema: dict[str, Any],
    parse: Callable[[str], T],
    *,
    temperature: float,
    max_tokens: int,
) -> tuple[T, list[Usage], str]:
    """``(parsed, usage per request, raw text)``; raise TeacherError after one failed retry."""
    calls: list[Usage] = []
    first = await _send(backend, messages, schema, calls, temperature, max_tokens)
    try:
        return _parse(parse, first, max_tokens), calls, first.text
    except TeacherError as err:
        error = err
    retry = [
        *messages,
        {"role": "assistant", "content": first.text},
        {
            "role": "user",
            "content": f"That reply was not usable: {error.detail}. "
            "Reply again with JSON only, exactly matching the schema.",
        },
    ]
    second = await _send(backend, retry, schema, calls, temperature, max_tokens)
    try:
        return _parse(parse, second, max_tokens), calls, second.text
    except TeacherError as again:
        raise TeacherError(
            again.reason,
            f"after one retry: {again.detail} (first: {error.detail})",
            first.text + RETRY_MARKER + second.text,
            calls,
        ) from None
