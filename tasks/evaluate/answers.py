"""Answers of a base model and its LoRA adapters to the eval questions: greedy, batched, cached.

Backends (``evaluate.backend``):

- ``transformers``: ``generate`` in left-padded batches on CPU (CUDA when present), stopping
  at the end-of-turn token (``stop_token_ids``); the adapter applied with PEFT.
- ``vllm``: the base model and each adapter served together (LoRA) — a running OpenAI-compatible
  server (``vllm_base_url``; adapters loaded by name through ``/v1/load_lora_adapter``) or an
  in-process ``vllm.LLM(enable_lora=True)`` with a ``LoRARequest`` per adapter.

Every answer is cached by (base model identity, adapter hash, question, parameters), so only
questions never answered by that exact model cost generation. ``truncated`` marks an answer
that stopped at ``max_new_tokens`` instead of the stop token.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from faqforge.chat import prompt_messages
from faqforge.config import EvaluateConfig
from faqforge.progress import Progress
from tasks.evaluate.cache import EvalCache, adapter_hash, model_identity


@dataclass(frozen=True)
class Answer:
    text: str
    truncated: bool


class BackendUnavailable(RuntimeError):
    """The configured generation backend cannot serve this model or adapter."""


def full_modules(adapter_dir: str | None) -> list[str]:
    """Modules an adapter saves whole (``modules_to_save``): vLLM LoRA cannot apply them."""
    if adapter_dir is None:
        return []
    config = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())
    return list(config.get("modules_to_save") or [])


def choose_backend(cfg: EvaluateConfig, adapters: list[str | None]) -> tuple[str, str]:
    """``(backend, why)``: the configured one, or for ``auto`` the best that can serve these."""
    saved = sorted({m for a in adapters for m in full_modules(a)})
    if cfg.backend == "transformers":
        return "transformers", "configured"
    if cfg.backend == "vllm":
        if saved:
            raise BackendUnavailable(
                f"evaluate.backend=vllm: the adapter saves full modules {saved} "
                "(finetune.modules_to_save), which vLLM LoRA serving cannot apply; set "
                "evaluate.backend: transformers, or train with finetune.modules_to_save: []"
            )
        return "vllm", "configured"
    vllm_ok = cfg.vllm_base_url is not None or _in_process_vllm_available()
    if vllm_ok and not saved:
        return "vllm", "vLLM available"
    if vllm_ok:
        return "transformers", f"vLLM cannot apply the adapter's full modules {saved}"
    return "transformers", "no vLLM server configured and no vllm + CUDA here"


def _in_process_vllm_available() -> bool:
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


def stop_token_ids(tokenizer: Any, generation_config: Any) -> list[int]:
    """Where an answer ends: the tokenizer's end-of-turn token and the model's own stop ids
    (``<|eot_id|>`` for Llama 3, ``<|im_end|>`` for ChatML models such as SmolLM2)."""
    configured = getattr(generation_config, "eos_token_id", None)
    ids = [tokenizer.eos_token_id, *(configured if isinstance(configured, list) else [configured])]
    return sorted({i for i in ids if i is not None})


def generate_transformers(
    model_path: str,
    adapter_dir: str | None,
    questions: list[str],
    cfg: EvaluateConfig,
    system_prompt: str,
) -> list[Answer]:
    """Greedy answers from the base model, or base + LoRA adapter, in left-padded batches."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from faqforge.models import LOAD_KWARGS

    device = "cuda" if torch.cuda.is_available() else "cpu"
    # The adapter's own tokenizer when it saved one (finetune does), else the base model's.
    has_own = adapter_dir is not None and (Path(adapter_dir) / "tokenizer_config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(
        adapter_dir if has_own else model_path, trust_remote_code=False
    )
    tokenizer.padding_side = "left"  # decoder-only: new tokens must follow the prompt directly
    # Any: transformers' stubs do not type a PeftModel or BatchEncoding as usable here.
    model: Any = AutoModelForCausalLM.from_pretrained(
        model_path, dtype=torch.float32, **LOAD_KWARGS
    )
    if adapter_dir:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir)
    model.to(device).eval()
    stop_ids = stop_token_ids(tokenizer, model.generation_config)

    answers: list[Answer] = []
    which = f"evaluate: answer ({'adapter' if adapter_dir else 'base'})"
    with Progress(which, len(questions), "questions") as progress:
        for start in range(0, len(questions), cfg.batch_size):
            batch = questions[start : start + cfg.batch_size]
            answers += _answer_batch(model, tokenizer, batch, cfg, system_prompt, stop_ids)
            progress.advance(len(batch))
    return answers


def _answer_batch(
    model: Any,
    tokenizer: Any,
    questions: list[str],
    cfg: EvaluateConfig,
    system_prompt: str,
    stop_ids: list[int],
) -> list[Answer]:
    import torch

    encoded: Any = tokenizer.apply_chat_template(
        [prompt_messages(q, system_prompt) for q in questions],
        add_generation_prompt=True, padding=True, return_dict=True, return_tensors="pt",
    )  # fmt: skip
    inputs = encoded.to(model.device)
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            do_sample=False,
            max_new_tokens=cfg.max_new_tokens,
            eos_token_id=stop_ids,
            pad_token_id=tokenizer.pad_token_id,
        )
    answers = []
    for row in out[:, inputs["input_ids"].shape[1] :].tolist():
        stopped = any(t in stop_ids for t in row)
        text = str(tokenizer.decode(row, skip_special_tokens=True)).strip()
        answers.append(Answer(text, truncated=not stopped and len(row) >= cfg.max_new_tokens))
    return answers


def generate_vllm_engine(
    model_path: str,
    adapters: list[str | None],
    questions: list[str],
    cfg: EvaluateConfig,
    system_prompt: str,
) -> list[list[Answer]]:
    """One in-process engine with LoRA on: the answers of each adapter (None: base)."""
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    ranks = [json.loads((Path(a) / "adapter_config.json").read_text())["r"] for a in adapters if a]
    llm = LLM(
        model=model_path,
        enable_lora=True,
        max_lora_rank=max(ranks, default=8),
        **cfg.vllm_engine_args,
    )
    params = SamplingParams(temperature=0.0, max_tokens=cfg.max_new_tokens)
    conversations = [prompt_messages(q, system_prompt) for q in questions]
    results = []
    for n, adapter in enumerate(adapters, 1):
        lora = LoRARequest(f"adapter-{n}", n, adapter) if adapter else None
        outs = llm.chat(conversations, params, lora_request=lora, use_tqdm=False)
        results.append(
            [
                Answer(o.outputs[0].text.strip(), o.outputs[0].finish_reason == "length")
                for o in outs
            ]
        )
    return results


def answer_all(
    model_path: str,
    adapters: list[str | None],
    questions: list[str],
    cfg: EvaluateConfig,
    system_prompt: str,
    cache: EvalCache,
    backend: str,
) -> list[list[Answer]]:
    """Each adapter's answers (None: the base model), generating only what is not cached."""
    params = {
        "max_new_tokens": cfg.max_new_tokens,
        "greedy": True,
        "system_prompt": system_prompt,
        "backend": backend,
    }
    model_id = model_identity(model_path)
    keys = [[[model_id, adapter_hash(a), q, params] for q in questions] for a in adapters]
    found = [[cache.get("answers", k) for k in ks] for ks in keys]
    todo = [[i for i, hit in enumerate(hits) if hit is None] for hits in found]
    fresh = _generate(model_path, adapters, questions, todo, cfg, system_prompt, backend)
    results = []
    for ks, hits, idx, new in zip(keys, found, todo, fresh, strict=True):
        answers = [Answer(h["text"], h["truncated"]) if h else None for h in hits]
        for i, answer in zip(idx, new, strict=True):
            answers[i] = answer
            cache.put("answers", ks[i], {"text": answer.text, "truncated": answer.truncated})
        results.append(cast(list[Answer], answers))  # every miss was generated above
    return results


def _generate(
    model_path: str,
    adapters: list[str | None],
    questions: list[str],
    todo: list[list[int]],
    cfg: EvaluateConfig,
    system_prompt: str,
    backend: str,
) -> list[list[Answer]]:
    if not any(todo):
        return [[] for _ in adapters]
    if backend == "transformers":
        return [
            generate_transformers(model_path, a, [questions[i] for i in idx], cfg, system_prompt)
            if idx
            else []
            for a, idx in zip(adapters, todo, strict=True)
        ]
    if cfg.vllm_base_url is not None:
        from tasks.evaluate.answers_vllm import generate_vllm_server

        return generate_vllm_server(
            cfg, model_path, adapters, [[questions[i] for i in idx] for idx in todo], system_prompt
        )
    # One engine for every adapter: ask all questions of each (cheap once it is up).
    full = generate_vllm_engine(model_path, adapters, questions, cfg, system_prompt)
    return [[ans[i] for i in idx] for ans, idx in zip(full, todo, strict=True)]
