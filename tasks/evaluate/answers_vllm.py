"""Base and LoRA answers from one running vLLM OpenAI-compatible server.

The server serves the base model with ``--enable-lora --max-lora-rank R`` and runtime LoRA
updating on (``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``). An adapter is addressed by a name
derived from its content hash; it is loaded through ``POST /v1/load_lora_adapter`` unless
``/v1/models`` already lists that name (e.g. started with ``--lora-modules``). The base model
is the listed model without a ``parent``. Requests go out ``batch_size`` at a time and the
server batches them; ``finish_reason == "length"`` marks a truncated answer.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import httpx

from faqforge.chat import prompt_messages
from faqforge.config import EvaluateConfig
from tasks.evaluate.cache import adapter_hash


class ServerError(RuntimeError):
    """The vLLM server refused a model listing, an adapter load or a completion."""


def lora_name(adapter_dir: str) -> str:
    """``ft-<hash>``: the same adapter content gets the same served name on any server."""
    return f"ft-{adapter_hash(adapter_dir)}"


def _headers(cfg: EvaluateConfig) -> dict[str, str]:
    key = os.environ.get(cfg.vllm_api_key_env)
    return {"Authorization": f"Bearer {key}"} if key else {}


def served_models(cfg: EvaluateConfig) -> list[dict[str, Any]]:
    response = httpx.get(f"{cfg.vllm_base_url}/models", headers=_headers(cfg), timeout=30)
    if response.status_code != 200:
        raise ServerError(f"GET {cfg.vllm_base_url}/models: HTTP {response.status_code}")
    return response.json()["data"]


def ensure_adapters(cfg: EvaluateConfig, model_path: str, adapters: list[str | None]) -> list[str]:
    """The served model name for each adapter (None: the base), loading adapters as needed.

    A server whose base model is another local folder than the run's is refused: its
    answers would be credited to the wrong model.
    """
    models = served_models(cfg)
    bases = [m for m in models if not m.get("parent")]
    if not bases:
        raise ServerError(f"{cfg.vllm_base_url} lists no base model")
    root = bases[0].get("root") or bases[0]["id"]
    if Path(model_path).is_dir() and Path(root).resolve() != Path(model_path).resolve():
        raise ServerError(
            f"{cfg.vllm_base_url} serves {root}, not the run's base model {model_path}"
        )
    listed = {m["id"] for m in models}
    names = []
    for adapter in adapters:
        if adapter is None:
            names.append(bases[0]["id"])
            continue
        name = lora_name(adapter)
        if name not in listed:
            response = httpx.post(
                f"{cfg.vllm_base_url}/load_lora_adapter",
                json={"lora_name": name, "lora_path": str(adapter)},
                headers=_headers(cfg),
                timeout=120,
            )
            if response.status_code != 200:
                raise ServerError(
                    f"loading adapter {adapter} into {cfg.vllm_base_url}: HTTP "
                    f"{response.status_code}: {response.text[:500]} (is the server started with "
                    "--enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True?)"
                )
            listed.add(name)
        names.append(name)
    return names


async def _answers(
    cfg: EvaluateConfig, names: list[str], questions: list[list[str]], system_prompt: str
) -> list[list[Any]]:
    import openai

    from tasks.evaluate.answers import Answer

    client = openai.AsyncOpenAI(
        base_url=cfg.vllm_base_url,
        timeout=300,
        max_retries=3,
        api_key=os.environ.get(cfg.vllm_api_key_env, "EMPTY"),
    )
    limit = asyncio.Semaphore(cfg.batch_size)

    async def one(model: str, question: str) -> Answer:
        async with limit:
            try:
                reply = await client.chat.completions.create(
                    model=model,
                    messages=prompt_messages(question, system_prompt),  # type: ignore[arg-type]
                    temperature=0.0,
                    max_tokens=cfg.max_new_tokens,
                )
            except openai.APIError as exc:
                raise ServerError(f"{cfg.vllm_base_url} model {model}: {exc}") from None
        choice = reply.choices[0]
        return Answer((choice.message.content or "").strip(), choice.finish_reason == "length")

    try:
        return [
            list(await asyncio.gather(*(one(name, q) for q in qs)))
            for name, qs in zip(names, questions, strict=True)
        ]
    finally:
        await client.close()


def generate_vllm_server(
    cfg: EvaluateConfig,
    model_path: str,
    adapters: list[str | None],
    questions: list[list[str]],
    system_prompt: str,
) -> list[list[Any]]:
    """Per adapter (None: base), greedy answers to its questions from the server."""
    names = ensure_adapters(cfg, model_path, adapters)
    return asyncio.run(_answers(cfg, names, questions, system_prompt))
