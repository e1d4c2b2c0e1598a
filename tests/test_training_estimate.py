"""The pre-training estimate (checked against PEFT's own count and the QLoRA anchors), the refusal
when a run cannot fit, target presets, and the multi-GPU `accelerate launch` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tasks.finetune as ft
from faqforge.config import FinetuneConfig
from faqforge.storage import Workspace, write_json, write_jsonl
from faqforge.tiny_llama import build_tiny_llama
from tasks.training import estimate as est
from tasks.training.launch import TrainSpec, launch_command

GB = 1e9
# Llama-3-8B's architecture; its config alone is enough (the meta device holds no weights).
LLAMA3_8B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "rope_theta": 500000.0,
    "max_position_embeddings": 8192,
    "tie_word_embeddings": False,
}
LLAMA3_70B = {
    **LLAMA3_8B,
    "hidden_size": 8192,
    "intermediate_size": 28672,
    "num_hidden_layers": 80,
    "num_attention_heads": 64,
}


def config_only(root: Path, config: dict) -> str:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(config))
    return str(root)


@pytest.fixture(scope="module")
def llama_8b(tmp_path_factory) -> est.ModelShape:
    path = config_only(tmp_path_factory.mktemp("llama3-8b"), LLAMA3_8B)
    return est.model_shape(path, FinetuneConfig(modules_to_save=[]))


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        ("all-linear", "all-linear"),  # PEFT resolves it (every linear but the head)
        ("attention-qk", ["q_proj", "k_proj"]),  # the seed recipe's cheaper variant
        (["q_proj", "v_proj"], ["q_proj", "v_proj"]),  # explicit list
    ],
)
def test_target_presets(targets, expected):
    assert est.target_modules(FinetuneConfig(target_modules=targets)) == expected


@pytest.mark.parametrize("targets", ["all-linear", "attention-qk"])
def test_trainable_count_matches_peft(tmp_path_factory, targets):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from tasks.training.recipe import lora_config

    tiny = str(build_tiny_llama(tmp_path_factory.getbasetemp() / "tiny-llama"))
    cfg = FinetuneConfig(target_modules=targets)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny), lora_config(cfg))
    trainable, total = model.get_nb_trainable_parameters()
    shape = est.model_shape(tiny, cfg)
    # PEFT's total counts the adapter and the lm_head copy on top of the base weights.
    assert (shape.trainable, shape.total) == (trainable, total - trainable)


def test_qlora_8b_matches_the_anchors(llama_8b):
    assert 8.0e9 < llama_8b.total < 8.1e9
    cfg = FinetuneConfig(batch_size=1, max_length=512, modules_to_save=[])
    qlora = est.estimate_memory(llama_8b, cfg, quantized=True, cuda=True, checkpointing=True)
    # params/2 GB for the 4-bit linears, plus embeddings and head left in bf16: ~5.7 GB.
    assert 5.3 * GB < qlora.weights < 6.2 * GB
    assert 6 * GB < qlora.peak < 9 * GB  # "8B QLoRA ≈ 6 GB" plus adapter state and activations
    assert qlora.tokens_per_s == pytest.approx(2413, rel=0.02)  # the torchtune 4090 anchor
    # torchtune's 7.4 GiB at 2k tokens uses chunked cross-entropy; transformers keeps the
    # full fp32 logits, so the estimate for that shape must not promise less.
    long = est.estimate_memory(
        llama_8b,
        cfg.model_copy(update={"max_length": 2048, "batch_size": 2}),
        quantized=True,
        cuda=True,
        checkpointing=True,
    )
    assert long.peak > 7.4 * est.GIB
    bf16 = est.estimate_memory(llama_8b, cfg, quantized=False, cuda=True, checkpointing=True)
    assert bf16.weights == pytest.approx(2 * llama_8b.total)
    assert bf16.peak > qlora.peak + 9 * GB
    # Checkpointing trades compute for activation memory.
    no_ckpt = est.estimate_memory(llama_8b, cfg, quantized=True, cuda=True, checkpointing=False)
    assert no_ckpt.activations > 10 * qlora.activations


def test_refuses_a_run_that_cannot_fit_before_loading_anything(tmp_path, capsys):
    # A 70B config with no weights next to it: loading would fail, so refusing must come first.
    base = config_only(tmp_path / "llama3-70b", LLAMA3_70B)
    dataset = tmp_path / "ds"
    write_json(dataset / "manifest.json", {"version": "v1"})
    for split in ("train.jsonl", "eval.jsonl"):
        write_jsonl(dataset / split, [])
    cfg = FinetuneConfig(base_model=base, quantization="none", modules_to_save=[])
    with pytest.raises(est.DoesNotFit, match=r"will not fit.*quantization: 4bit.*check_memory"):
        ft.train_run(dataset, cfg, Workspace(tmp_path / "ws"))
    assert "estimated peak" in capsys.readouterr().out  # printed before refusing
    assert not (tmp_path / "ws" / "runs" / ft.run_id("v1", cfg) / "adapter").exists()


def test_launch_command_parses_as_accelerate_launch(tmp_path):
    from accelerate.commands.launch import launch_command_parser

    spec = tmp_path / "train_spec.json"
    cmd = launch_command(spec, devices=4)
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    args = launch_command_parser().parse_args(cmd[3:])
    assert (args.num_processes, args.num_machines, args.mixed_precision) == (4, 1, "bf16")
    assert args.module and args.training_script == "tasks.training.launch"
    assert args.training_script_args == [str(spec)]


def test_more_than_one_gpu_trains_under_accelerate_launch(tmp_path, monkeypatch):
    launched = []

    def fake_launch(cmd, check):  # stands in for the GPUs: writes what the ranks would
        launched.append(cmd)
        spec = TrainSpec.load(Path(cmd[-1]))
        (Path(spec.run_dir) / "adapter").mkdir()
        write_json(Path(spec.run_dir) / "train_metrics.json", {"steps": 7})

    monkeypatch.setattr(ft, "cuda_devices", lambda: 2)
    monkeypatch.setattr(ft.subprocess, "run", fake_launch)
    monkeypatch.setattr(ft, "run_training", lambda spec: pytest.fail("trained in-process"))
    dataset = tmp_path / "ds"
    write_json(dataset / "manifest.json", {"version": "v1", "content_hash": "h"})
    cfg = FinetuneConfig(base_model=str(tmp_path / "model"))
    summary = ft.train_run(dataset, cfg, Workspace(tmp_path / "ws"))
    [cmd] = launched
    assert cmd[cmd.index("--num_processes") + 1] == "2"
    spec = TrainSpec.load(Path(cmd[-1]))
    assert spec.config == cfg.model_dump(mode="json") and spec.dataset["content_hash"] == "h"
    assert summary["metrics"] == {"steps": 7}
