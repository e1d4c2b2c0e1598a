"""Chat backend for any OpenAI-compatible endpoint (``vllm serve``, a hosted API).

One request is one ``chat.completions.create`` with the reply schema in ``response_format``
(``json_schema``; vLLM enforces it with xgrammar; its ``guided_json`` would be ignored). The
client's own retries are off: transient failures are retried here with exponential backoff
and jitter (``retry.py``), other 4xx fail at once. The API key is read from the variable named
by ``api_key_env`` and scrubbed from every error this module raises.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from faqforge.config import TeacherConfig
from faqforge.teachers.base import Completion, TeacherError, Usage
from faqforge.teachers.retry import backoff_delay, is_transient, retry_after_s

log = logging.getLogger("faqforge.teachers")
_DEFAULT = TeacherConfig()  # the keyword defaults below are the config's, stated once there


class OpenAIBackend:
    """``OpenAIBackend(base_url, model, "MY_KEY_VAR")``; ``retries`` counts retried requests."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str,
        *,
        timeout_s: float = _DEFAULT.timeout_s,
        max_retries: int = _DEFAULT.max_retries,
        backoff_s: float = _DEFAULT.backoff_s,
        backoff_max_s: float = _DEFAULT.backoff_max_s,
    ):
        self.base_url = base_url
        self.model = model
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.retries = 0
        self._client: openai.AsyncOpenAI | None = None

    def redact(self, text: str) -> str:
        key = os.environ.get(self.api_key_env)
        return text.replace(key, "***") if key else text

    def _get_client(self) -> openai.AsyncOpenAI:
        # Created lazily: its connection pool belongs to the event loop that first uses it.
        if self._client is None:
            self._client = openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=os.environ.get(self.api_key_env, "EMPTY"),
                timeout=self.timeout_s,
                max_retries=0,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def chat(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        *,
        temperature: float,
        max_tokens: int,
    ) -> Completion:
        for attempt in range(self.max_retries + 1):
            try:
                # A total deadline per attempt: the client's timeout is per read, so a server
                # dripping one byte every few seconds would hold a request for minutes.
                async with asyncio.timeout(self.timeout_s):
                    # The stubs want typed message/format params; plain dicts are what is sent.
                    response = await self._get_client().chat.completions.create(  # type: ignore[call-overload]
                        model=self.model,
                        messages=messages,
                        temperature=temperature,
                        max_tokens=max_tokens,
                        response_format={
                            "type": "json_schema",
                            "json_schema": {"name": "reply", "schema": schema, "strict": True},
                        },
                    )
            except (openai.APIError, TimeoutError) as exc:
                if not is_transient(exc) or attempt == self.max_retries:
                    raise self._error(exc, attempt) from None
                self.retries += 1
                delay = backoff_delay(attempt, self.backoff_s, self.backoff_max_s)
                await asyncio.sleep(max(delay, retry_after_s(exc, self.backoff_max_s)))
                continue
            except ValueError as exc:  # a body that is not UTF-8 JSON (UnicodeDecodeError too)
                raise self._bad_reply(f"{type(exc).__name__}: {exc}") from None
            if not isinstance(response, ChatCompletion):  # a 200 with an HTML or text body
                raise self._bad_reply(f"not a chat completion: {str(response)[:200]!r}")
            text, finish_reason = self._content(response)
            return Completion(text, self._usage(response), finish_reason)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _content(self, response: ChatCompletion) -> tuple[str, str | None]:
        if not response.choices:
            return "", None
        choice = response.choices[0]
        return choice.message.content or "", choice.finish_reason

    def _usage(self, response: ChatCompletion) -> Usage:
        """The billed tokens; negative counts (a broken proxy) are clamped to 0 and logged, so
        they cannot refill ``teacher.token_budget``."""
        if response.usage is None:
            return Usage()
        counts = (response.usage.prompt_tokens or 0, response.usage.completion_tokens or 0)
        if min(counts) < 0:
            log.warning("%s reported negative token usage %s: counted as 0", self.base_url, counts)
        return Usage(*(max(0, int(n)) for n in counts))

    def _bad_reply(self, what: str) -> TeacherError:
        return TeacherError("bad_reply", self.redact(f"HTTP 200 from {self.base_url}: {what}"))

    def _error(self, exc: openai.APIError | TimeoutError, attempt: int) -> TeacherError:
        tries = f" after {attempt + 1} attempts" if attempt else ""
        if isinstance(exc, TimeoutError):
            detail = f"no complete reply from {self.base_url} within {self.timeout_s:g} s{tries}"
            return TeacherError("http_error", detail)
        if isinstance(exc, openai.APIStatusError):
            detail = f"HTTP {exc.status_code} from {self.base_url}{tries}: {exc.message}"
            return TeacherError("http_error", self.redact(detail), self.redact(exc.response.text))
        detail = f"{type(exc).__name__} talking to {self.base_url}{tries}: {exc}"
        return TeacherError("http_error", self.redact(detail))
