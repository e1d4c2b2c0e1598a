"""Chat backend on an in-process ``vllm.LLM`` engine, for a single-GPU box with no server.

vLLM batches best when it sees many requests at once, but the generate stage asks one chunk
at a time (``teacher.concurrency`` of them in flight). So requests are queued and each
batch of those waiting is sent as one ``LLM.chat`` call on a worker thread. Structured
output is ``StructuredOutputsParams(json=schema)``. ``vllm`` is imported only here, when the
first batch runs; one engine per (model, engine args) lives for the process. A script that
builds the engine needs an ``if __name__ == "__main__":`` guard (vLLM spawns a process).
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from faqforge.teachers.base import Completion, TeacherError, Usage

_ENGINES: dict[str, Any] = {}
_ENGINES_LOCK = threading.Lock()


def sampling_kwargs(schema: dict[str, Any], temperature: float, max_tokens: int) -> dict:
    """``SamplingParams`` fields for one request; ``json`` becomes its structured output."""
    return {"temperature": temperature, "max_tokens": max_tokens, "json": schema}


def engine(model: str, engine_args: dict[str, Any]) -> Any:
    """The process's ``vllm.LLM`` for this model and arguments, built on first use."""
    key = json.dumps([model, engine_args], sort_keys=True, default=str)
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            from vllm import LLM

            _ENGINES[key] = LLM(model=model, **engine_args)
        return _ENGINES[key]


def run_batch(llm: Any, batch: list[tuple[list[dict[str, str]], dict]]) -> list[Completion]:
    """One ``LLM.chat`` call for a batch of (messages, sampling kwargs)."""
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    params = [
        SamplingParams(
            temperature=kw["temperature"],
            max_tokens=kw["max_tokens"],
            structured_outputs=StructuredOutputsParams(json=kw["json"]),
        )
        for _, kw in batch
    ]
    outputs = llm.chat([messages for messages, _ in batch], params, use_tqdm=False)
    return [
        Completion(
            out.outputs[0].text,
            Usage(len(out.prompt_token_ids or ()), len(out.outputs[0].token_ids)),
            out.outputs[0].finish_reason,
        )
        for out in outputs
    ]


class VLLMBackend:
    """``VLLMBackend("/models/llama-70b", {"max_model_len": 8192})``; batches ≤ ``max_batch``."""

    def __init__(self, model: str, engine_args: dict[str, Any], max_batch: int = 64):
        self.model = model
        self.engine_args = engine_args
        self.max_batch = max_batch
        self._queue: list[tuple[list[dict[str, str]], dict, asyncio.Future]] = []
        self._worker: asyncio.Task | None = None
        self.batch_sizes: list[int] = []  # what the engine was sent at once, for reports

    async def chat(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        *,
        temperature: float,
        max_tokens: int,
    ) -> Completion:
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._queue.append((messages, sampling_kwargs(schema, temperature, max_tokens), future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            await asyncio.sleep(0)  # let every caller ready to send join this batch
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            self.batch_sizes.append(len(batch))
            try:
                llm = await asyncio.to_thread(engine, self.model, self.engine_args)
                replies = await asyncio.to_thread(run_batch, llm, [(m, kw) for m, kw, _ in batch])
            except Exception as exc:  # the engine's error belongs to every request in the batch
                error = f"vLLM engine for {self.model} failed: {type(exc).__name__}: {exc}"
                for *_, future in batch:
                    future.set_exception(TeacherError("engine_error", error))
                continue
            for (*_, future), reply in zip(batch, replies, strict=True):
                future.set_result(reply)

    async def aclose(self) -> None:
        """The engine stays loaded for the process: building it again costs minutes."""
