"""Evaluation against a real vLLM server (``vllm`` tier): base + LoRA served together, and the
judge parsing what a real constrained server writes.

One server for this module, on a tiny local Llama, started with ``--enable-lora`` and runtime
adapter loading. The adapter is a LoRA with random (non-zero) weights and no saved full modules,
so it changes the model's answers and vLLM can serve it. The weights are random: answers and
verdicts are noise, but they are real server output, parsed by the real code.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from faqforge.config import EvaluateConfig, TeacherConfig
from faqforge.records import KNOWLEDGE, EvalItem
from faqforge.storage import Workspace, read_json, write_json, write_jsonl
from faqforge.teachers.openai_compat import OpenAIBackend
from tasks.evaluate.cache import EvalCache
from tasks.evaluate.grader import VERDICTS, JudgePrompts
from tasks.evaluate.grading import Item, judge_items
from tasks.publish import PROBE_RULES

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
SYSTEM = "You answer questions about the organisation's documentation."
QUESTIONS = ["Where are reports kept?", "What is a champion?", "How is the judge chosen?"]


@pytest.fixture(scope="module")
def lora_server(tmp_path_factory, vllm_python):
    """A server like conftest's ``vllm_server``, with LoRA on and adapters loaded at run time."""
    from faqforge.tiny_llama import build_tiny_llama
    from testsupport.local_vllm import LocalVLLM

    class LoRAServer(LocalVLLM):
        def command(self) -> list[str]:
            return [*super().command(), "--enable-lora", "--max-lora-rank", "8"]

        def env(self) -> dict[str, str]:
            return {**super().env(), "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}

    root = tmp_path_factory.mktemp("vllm-lora")
    model = build_tiny_llama(root / "model")
    adapter = random_lora(model, root / "adapter")
    with LoRAServer(vllm_python, model, root / "server.log", served_name="tiny-eval") as srv:
        yield {"server": srv, "model": str(model), "adapter": str(adapter), "root": root}


def random_lora(model_dir: Path, out: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    cfg = LoraConfig(r=8, lora_alpha=32, init_lora_weights=False,
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                     "up_proj", "down_proj"])  # fmt: skip
    get_peft_model(model, cfg).save_pretrained(out)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    return out


def server_cfg(lora_server, **kw) -> EvaluateConfig:
    return EvaluateConfig(backend="vllm", vllm_base_url=lora_server["server"].base_url,
                          max_new_tokens=16, **kw)  # fmt: skip


def test_base_and_adapter_served_together(lora_server):
    from tasks.evaluate.answers import generate_transformers
    from tasks.evaluate.answers_vllm import generate_vllm_server, lora_name, served_models

    cfg = server_cfg(lora_server)
    model, adapter = lora_server["model"], lora_server["adapter"]
    base, tuned = generate_vllm_server(cfg, model, [None, adapter], [QUESTIONS] * 2, SYSTEM)
    assert lora_name(adapter) in {m["id"] for m in served_models(cfg)}  # loaded at run time
    assert [a.text for a in base] != [a.text for a in tuned]  # the adapter was applied
    # The same greedy answers as transformers + PEFT on this machine, both without and with
    # the adapter: the server runs the same model, not just some model.
    hf_base = generate_transformers(model, None, QUESTIONS, cfg, SYSTEM)
    hf_tuned = generate_transformers(model, adapter, QUESTIONS, cfg, SYSTEM)
    print("\nvllm", [a.text for a in tuned], "\nhf  ", [a.text for a in hf_tuned])
    same = [a.text.split()[:3] == b.text.split()[:3]
            for a, b in zip(base + tuned, hf_base + hf_tuned, strict=True)]  # fmt: skip
    assert sum(same) >= len(same) - 1  # float32 CPU kernels may break one near-tie
    # A random model rarely stops early: the length limit shows up as truncation on both.
    assert [a.truncated for a in tuned] == [b.truncated for b in hf_tuned]


def test_judge_parses_real_server_output(lora_server, tmp_path):
    backend = OpenAIBackend(lora_server["server"].base_url, "tiny-eval", "NO_KEY_NEEDED")
    items = [Item(f"q{i}", q, "Reports are kept under runs/<id>/eval.") for i, q in
             enumerate(QUESTIONS)]  # fmt: skip
    answers = {"base": ["In runs.", "", "I don't know."], "tuned": ["Under runs/<id>/eval."] * 3}
    cache = EvalCache(tmp_path)
    run = asyncio.run(judge_items(backend, JudgePrompts.load(), items, answers, cache,
                                  concurrency=4, temperature=0.0, max_tokens=512))  # fmt: skip
    assert run.failures == []  # every constrained reply parsed (maybe after one retry)
    assert all(1 <= g.score <= 10 and g.reason for side in run.grades.values() for g in side)
    assert all(v.winner in VERDICTS for pair in run.verdicts for v in pair)
    assert all(o in ("win", "tie", "loss") for o in run.outcomes)
    assert run.usage.prompt_tokens > 100 * 12 and run.usage.completion_tokens > 0
    raws = [read_json(p)["raw"] for p in (tmp_path / "judge").rglob("*.json")]
    assert len(raws) == 12 and all(isinstance(json.loads(r, strict=False), dict) for r in raws)


def test_evaluate_run_on_vllm_with_judge(lora_server, tmp_path):
    from tasks.evaluate.stage import evaluate_run

    ws = Workspace(tmp_path / "ws")
    dataset = tmp_path / "ds"
    # The headline figures (base, tuned, pairwise) are the knowledge probe's: ask that one.
    pairs = [EvalItem(f"q{i}", q, "Reports are kept under runs/<id>/eval.", "d", "c", "s", "p",
                      "t", probe=KNOWLEDGE, taught_by=[f"t{i}"])
             for i, q in enumerate(QUESTIONS)]  # fmt: skip
    write_jsonl(dataset / "eval.jsonl", pairs)
    probes = {probe: {"items": len(pairs) if probe == KNOWLEDGE else 0, **rules}
              for probe, rules in PROBE_RULES.items()}  # fmt: skip
    write_json(dataset / "manifest.json", {"eval": {"probes": probes}})  # as publish writes it
    run_dir = ws.runs / "ft-vllm"
    write_json(run_dir / "manifest.json", {
        "run_id": "ft-vllm", "dataset_dir": str(dataset), "dataset_version": "ds-vllm",
        "base_model": lora_server["model"], "adapter_dir": lora_server["adapter"],
        "config": {"system_prompt": SYSTEM},
    })  # fmt: skip
    teacher = TeacherConfig(kind="openai", base_url=lora_server["server"].base_url,
                            model="tiny-eval")  # fmt: skip
    result = evaluate_run(run_dir, server_cfg(lora_server, judge_max_tokens=512), ws, teacher)
    m = result["metrics"]
    assert m["lineage"]["backend"] == "vllm" and m["lineage"]["judge"]["model"] == "tiny-eval"
    for side in ("base", "tuned"):
        assert 1 <= m[side]["judge_score"] <= 10
    assert sum(m["pairwise"].values()) == pytest.approx(1.0)
    assert m["ci95"]["pairwise"]["win"] is not None
    assert "judge_pairwise" in m["lineage"]["judge"]["prompt_versions"]
