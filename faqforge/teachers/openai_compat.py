"""Teacher behind any OpenAI-compatible chat endpoint (``vllm serve``, a hosted API).

One chunk is one chat completion constrained by a JSON schema (``response_format``
``json_schema``, which vLLM enforces with xgrammar). A reply that does not parse or does not
fit the schema is asked for once more with the error fed back; a second failure raises
TeacherError with both raw replies. HTTP retries and timeouts are the ``openai`` client's
(``cfg.max_retries``, ``cfg.timeout_s``). The API key is read from the variable named by
``cfg.api_key_env`` and scrubbed from every error this module raises.
"""

from __future__ import annotations

import json
import os
from typing import Any

import openai

from faqforge.config import TeacherConfig
from faqforge.prompts import Prompt, fence, load_prompt
from faqforge.records import Chunk
from faqforge.teachers.base import TeacherError, TeacherReply, Usage

RETRY_MARKER = "\n--- retry ---\n"


def qa_schema(n_pairs: int, max_answer_words: int) -> dict[str, Any]:
    """The reply schema; ``maxLength`` lets a constrained decoder always finish valid JSON."""
    text = {"type": "string", "minLength": 1}
    pair = {
        "type": "object",
        "properties": {
            "question": {**text, "maxLength": 300},
            "answer": {**text, "maxLength": max(200, max_answer_words * 10)},
        },
        "required": ["question", "answer"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "pairs": {"type": "array", "items": pair, "minItems": 1, "maxItems": n_pairs}
        },
        "required": ["pairs"],
        "additionalProperties": False,
    }


def parse_pairs(text: str, n_pairs: int) -> list[tuple[str, str]]:
    """``'{"pairs": [{"question": "Q?", "answer": "A."}]}'`` → ``[("Q?", "A.")]``.

    ``strict=False`` accepts control characters inside strings (xgrammar lets them through).
    Raises TeacherError ``parse_error`` (not JSON) or ``schema_error`` (wrong shape).
    """
    try:
        data = json.loads(text, strict=False)
    except json.JSONDecodeError as exc:
        raise TeacherError("parse_error", f"reply is not JSON: {exc}", raw=text) from None
    items = data.get("pairs") if isinstance(data, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= n_pairs:
        raise TeacherError(
            "schema_error", f'expected {{"pairs": [...]}} with 1 to {n_pairs} items', raw=text
        )
    pairs = []
    for i, item in enumerate(items):
        q = item.get("question") if isinstance(item, dict) else None
        a = item.get("answer") if isinstance(item, dict) else None
        if not (isinstance(q, str) and isinstance(a, str) and q.strip() and a.strip()):
            raise TeacherError(
                "schema_error", f"pairs[{i}] needs non-empty string question and answer", raw=text
            )
        pairs.append((q.strip(), a.strip()))
    return pairs


class OpenAITeacher:
    """``name`` is the served model; ``prompt_version`` the generate_qa prompt's hash."""

    def __init__(self, cfg: TeacherConfig, prompt: Prompt | None = None):
        self.cfg = cfg
        self.name = cfg.model
        self.prompt = prompt or load_prompt("generate_qa")
        self.prompt_version = self.prompt.version
        self._client: openai.AsyncOpenAI | None = None

    def _api_key(self) -> str:
        return os.environ.get(self.cfg.api_key_env, "EMPTY")

    def _redact(self, text: str) -> str:
        key = os.environ.get(self.cfg.api_key_env)
        return text.replace(key, "***") if key else text

    def _get_client(self) -> openai.AsyncOpenAI:
        # Created lazily: its connection pool belongs to the event loop that first uses it.
        if self._client is None:
            self._client = openai.AsyncOpenAI(
                base_url=self.cfg.base_url,
                api_key=self._api_key(),
                timeout=self.cfg.timeout_s,
                max_retries=self.cfg.max_retries,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def messages(self, chunk: Chunk, n_pairs: int) -> list[dict[str, str]]:
        user = self.prompt.render_user(
            document=fence(chunk.text),
            heading_path=" > ".join(chunk.heading_path) or "(none)",
            source=chunk.source,
            n_pairs=n_pairs,
            max_answer_words=self.cfg.max_answer_words,
        )
        return [
            {"role": "system", "content": self.prompt.system},
            {"role": "user", "content": user},
        ]

    async def _complete(
        self, messages: list[dict[str, str]], n_pairs: int, spent: Usage
    ) -> tuple[str, Usage, str | None]:
        """One chat completion: (reply text, usage so far, finish reason)."""
        schema = qa_schema(n_pairs, self.cfg.max_answer_words)
        try:
            response = await self._get_client().chat.completions.create(
                model=self.cfg.model,
                messages=messages,  # type: ignore[arg-type]
                temperature=self.cfg.temperature,
                max_tokens=self.cfg.max_tokens,
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "qa_pairs", "schema": schema, "strict": True},
                },
            )
        except openai.APIStatusError as exc:
            detail = f"HTTP {exc.status_code} from {self.cfg.base_url}: {exc.message}"
            raise TeacherError(
                "http_error", self._redact(detail), self._redact(exc.response.text), spent
            ) from None
        except openai.APIConnectionError as exc:  # includes timeouts
            detail = f"{type(exc).__name__} talking to {self.cfg.base_url}: {exc}"
            raise TeacherError("http_error", self._redact(detail), usage=spent) from None
        usage = spent
        if response.usage is not None:
            usage += Usage(response.usage.prompt_tokens, response.usage.completion_tokens)
        if not response.choices:
            return "", usage, None
        choice = response.choices[0]
        return choice.message.content or "", usage, choice.finish_reason

    def _parse(self, text: str, n_pairs: int, finish: str | None) -> list[tuple[str, str]]:
        try:
            return parse_pairs(text, n_pairs)
        except TeacherError as err:
            if finish == "length":  # cut off mid-JSON: say so, with the fix
                err.detail += f" (reply cut at max_tokens={self.cfg.max_tokens}; raise it)"
            raise

    async def generate(self, chunk: Chunk, n_pairs: int) -> TeacherReply:
        messages = self.messages(chunk, n_pairs)
        text, usage, finish = await self._complete(messages, n_pairs, Usage())
        try:
            return TeacherReply(self._parse(text, n_pairs, finish), usage, text)
        except TeacherError as first:
            retry = [
                *messages,
                {"role": "assistant", "content": text},
                {
                    "role": "user",
                    "content": f"That reply was not usable: {first.detail}. "
                    "Reply again with JSON only, exactly matching the schema.",
                },
            ]
            again, usage, finish = await self._complete(retry, n_pairs, usage)
            try:
                return TeacherReply(self._parse(again, n_pairs, finish), usage, again)
            except TeacherError as second:
                raise TeacherError(
                    second.reason,
                    self._redact(f"after one retry: {second.detail} (first: {first.detail})"),
                    self._redact(text + RETRY_MARKER + again),
                    usage,
                ) from None
