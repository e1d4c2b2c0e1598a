"""Fine-tuning the tiny student: assistant-only labels, learning on planted data, the run folder
(adapter, card, curve, samples, merged model), adapter reload + merge, skipping a finished run,
Prefect artifacts, and the CPU QLoRA path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import tasks.finetune as ft
from faqforge.artifacts import artifact_key
from faqforge.config import FinetuneConfig
from faqforge.locking import WorkspaceLocked, workspace_lock
from faqforge.storage import (
    Workspace,
    iter_jsonl,
    read_json,
    read_run_manifest,
)
from tasks.training.recipe import build_trainer, train_adapter
from testsupport.planted import FAST, planted_pairs, publish_planted


def test_assistant_only_loss_masks_the_prompt(tiny_llama, tmp_path):
    pairs = planted_pairs()[:2]
    trainer, _ = build_trainer(str(tiny_llama), pairs, pairs, FinetuneConfig(max_steps=1), tmp_path)
    tok = trainer.processing_class
    rows = list(trainer.train_dataset)
    for row in rows:
        ids, labels = row["input_ids"], row["labels"]
        # Everything up to the answer (system, question, assistant header) is masked...
        answer_start = labels.index(next(label for label in labels if label != -100))
        assert set(labels[:answer_start]) == {-100}
        assert tok.decode(ids[:answer_start]).endswith(
            "<|start_header_id|>assistant<|end_header_id|>\n\n"
        )
        # ...and the answer with its stop token is learned, token for token.
        assert labels[answer_start:] == ids[answer_start:]
        assert tok.decode(ids[answer_start:]) in {pair.answer + "<|eot_id|>" for pair in pairs}
    # The batches the trainer computes the loss on keep the mask (padding is masked too).
    batch = trainer.data_collator(rows)
    for labels, row in zip(batch["labels"].tolist(), rows, strict=True):
        expected = row["labels"] + [-100] * (len(labels) - len(row["labels"]))
        assert labels == expected


@pytest.mark.slow
def test_training_lowers_loss(planted_run):
    m = planted_run["summary"]["metrics"]
    print(f"\nplanted run: {m}")
    assert m["steps"] == FAST["max_steps"]
    assert m["train_loss_last"] < m["train_loss_first"] / 4
    assert m["eval_loss"] < m["eval_loss_base"] / 4
    assert 0 < m["trainable_params"] < m["total_params"]


@pytest.mark.slow
def test_training_changes_the_trainable_parameters(planted_run, tiny_llama):
    from safetensors.torch import load_file

    base = load_file(tiny_llama / "model.safetensors")
    adapter = load_file(Path(planted_run["summary"]["adapter_dir"]) / "adapter_model.safetensors")
    lora_b = [t for name, t in adapter.items() if "lora_B" in name]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b)  # LoRA B starts at zero
    head = next(t for name, t in adapter.items() if "lm_head" in name)  # modules_to_save copy
    assert head.shape == base["lm_head.weight"].shape
    assert not (head == base["lm_head.weight"]).all()


@pytest.mark.slow
def test_run_folder_layout_and_lineage(planted_run):
    s, ws, cfg = planted_run["summary"], planted_run["ws"], planted_run["cfg"]
    run_dir = Path(s["run_dir"])
    assert run_dir == ws / "runs" / s["run_id"] and s["run_id"].startswith("ft-")
    # test_evaluate may already have added eval/ to the shared run.
    assert {p.name for p in run_dir.iterdir()} - {"eval"} == {
        "adapter",
        "merged",
        "trainer",
        "samples",
        "manifest.json",
        "train_spec.json",
        "train_metrics.json",
        "trainer_state.json",
        "loss_curve.png",
        "model_card.md",
    }
    adapter = set(p.name for p in Path(s["adapter_dir"]).iterdir())
    assert {
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "chat_template.jinja",
        "README.md",
        Workspace.SUCCESS,
    } <= adapter
    raw = read_json(run_dir / "manifest.json")
    assert raw["adapter_dir"] == f"runs/{s['run_id']}/adapter"  # workspace-relative: portable
    manifest = read_run_manifest(Workspace(ws), run_dir)
    assert manifest.adapter_dir == str(run_dir / "adapter")
    assert manifest.dataset_version == s["dataset_version"] == "ds-planted"
    assert manifest.dataset_content_hash == "test"
    assert manifest.dataset_dir == str(planted_run["dataset"])
    assert manifest.base_model == cfg.base_model
    assert manifest.config == cfg.model_dump(mode="json")
    assert manifest.metrics == s["metrics"] == read_json(run_dir / "train_metrics.json")
    assert manifest.merged_dir == str(run_dir / "merged")
    assert Workspace(ws).read_pointer("runs/LATEST") == s["run_id"]
    # Checkpoints every save_steps (50), the last two kept.
    assert sorted(p.name for p in (run_dir / "trainer").glob("checkpoint-*")) == [
        "checkpoint-100",
        "checkpoint-150",
    ]


@pytest.mark.slow
def test_eval_loss_curve_samples_and_card(planted_run):
    s, cfg = planted_run["summary"], planted_run["cfg"]
    run_dir = Path(s["run_dir"])
    history = read_json(run_dir / "trainer_state.json")["log_history"]
    eval_steps = sorted({e["step"] for e in history if "eval_loss" in e})
    assert eval_steps == [0, 50, 100, 150]  # before training, every eval_steps, at the end
    assert sum("loss" in e for e in history) >= 10
    png = (run_dir / "loss_curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    # Sample answers at every evaluation: random at step 0, the planted fact at the end.
    samples = {p.name: list(iter_jsonl(p)) for p in sorted((run_dir / "samples").iterdir())}
    assert list(samples) == [f"step-{n:06d}.jsonl" for n in eval_steps]
    last = samples["step-000150.jsonl"]
    assert len(last) == cfg.sample_questions
    assert sum(r["answer"] == r["reference"] for r in last) >= 2
    assert not any(r["answer"] == r["reference"] for r in samples["step-000000.jsonl"])
    card = (run_dir / "model_card.md").read_text()
    assert card == (run_dir / "adapter" / "README.md").read_text()
    for expected in (
        f"base_model: {cfg.base_model}",
        "Dataset version `ds-planted` (content hash `test`)",
        "| lora_r | `16` |",
        "| learning_rate | `0.005` |",
        f"| eval_loss | {s['metrics']['eval_loss']} |",
        "## Intended use",
    ):
        assert expected in card


@pytest.mark.slow
def test_adapter_reloads_and_merges_into_the_same_model(planted_run, tiny_llama):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    s = planted_run["summary"]
    run_dir = Path(s["run_dir"])
    tok = AutoTokenizer.from_pretrained(s["adapter_dir"])
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What colour is the kettle?"}], return_tensors="pt"
    )["input_ids"]
    with torch.inference_mode():
        base = AutoModelForCausalLM.from_pretrained(tiny_llama)
        base_logits = base(ids).logits
        tuned = PeftModel.from_pretrained(base, s["adapter_dir"]).eval()
        tuned_logits = tuned(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(run_dir / "merged").eval()
        merged_logits = merged(ids).logits
    assert not torch.allclose(base_logits, tuned_logits, atol=1e-2)  # the adapter does something
    assert torch.allclose(merged_logits, tuned_logits, atol=1e-4)  # merging changes nothing
    assert AutoTokenizer.from_pretrained(run_dir / "merged").chat_template == tok.chat_template


@pytest.mark.slow
def test_second_call_with_same_inputs_skips_training(planted_run, monkeypatch):
    def must_not_train(*_args, **_kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(ft, "run_training", must_not_train)
    again = ft.finetune.fn(str(planted_run["dataset"]), planted_run["cfg"], str(planted_run["ws"]))
    assert again == planted_run["summary"]


def test_run_id_follows_dataset_and_config():
    cfg = FinetuneConfig()
    assert ft.run_id("v1", cfg) == ft.run_id("v1", FinetuneConfig())
    assert ft.run_id("v1", cfg) != ft.run_id("v2", cfg)
    assert ft.run_id("v1", cfg) != ft.run_id("v1", FinetuneConfig(lora_r=8))


def test_failed_training_leaves_no_complete_adapter(tmp_path, tiny_llama, monkeypatch):
    def crash(spec):
        adapter = Path(spec.run_dir) / "adapter"
        adapter.mkdir()
        (adapter / "adapter_model.safetensors").write_bytes(b"half")
        raise RuntimeError("killed mid-training")

    monkeypatch.setattr(ft, "run_training", crash)
    dataset = publish_planted(tmp_path / "ds")
    cfg = FinetuneConfig(base_model=str(tiny_llama))
    with pytest.raises(RuntimeError, match="killed"):
        ft.finetune.fn(str(dataset), cfg, str(tmp_path / "ws"))
    run_dir = tmp_path / "ws" / "runs" / ft.run_id("ds-planted", cfg)
    # Nothing marks the run usable: no _SUCCESS, no manifest, no LATEST pointer.
    assert not (run_dir / "adapter" / Workspace.SUCCESS).exists()
    assert not (run_dir / "manifest.json").exists()
    assert Workspace(tmp_path / "ws").read_pointer("runs/LATEST") is None


def test_a_second_training_of_the_same_run_fails_naming_the_first(tmp_path, tiny_llama):
    dataset = publish_planted(tmp_path / "ds")
    cfg = FinetuneConfig(base_model=str(tiny_llama))
    ws = tmp_path / "ws"
    rid = ft.run_id("ds-planted", cfg)
    held = rf"busy: held by finetune-{rid} .*pid {os.getpid()}"
    with (
        workspace_lock(ws, f"finetune-{rid}"),  # the first training, still running
        pytest.raises(WorkspaceLocked, match=held),
    ):
        ft.finetune.fn(str(dataset), cfg, str(ws))
    assert not (ws / "runs" / rid / "train_spec.json").exists()  # the second wrote nothing


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="published dataset folder"):
        ft.finetune.fn(str(tmp_path), FinetuneConfig(), str(tmp_path / "ws"))


def test_qlora_loads_nf4_double_quant_with_bf16_compute(tiny_llama, tmp_path):
    import torch
    from bitsandbytes.nn import Linear4bit

    pairs = planted_pairs()[:2]
    cfg = FinetuneConfig(quantization="4bit", max_steps=1)
    model = build_trainer(str(tiny_llama), pairs, pairs, cfg, tmp_path)[0].model
    quantized = [m for m in model.modules() if isinstance(m, Linear4bit)]
    assert len(quantized) == 2 * 7  # q k v o gate up down in both layers
    for layer in quantized:
        assert layer.weight.quant_state.quant_type == "nf4"
        assert layer.weight.quant_state.nested  # double quantisation of the scales
        assert layer.compute_dtype == torch.bfloat16
    # prepare_model_for_kbit_training: norms in fp32, inputs require grad for the adapter.
    norms = [p for n, p in model.named_parameters() if "norm" in n]
    assert norms and all(p.dtype == torch.float32 for p in norms)


@pytest.mark.slow
def test_qlora_4bit_trains_on_cpu(tiny_llama, tmp_path):
    pairs = planted_pairs()
    cfg = FinetuneConfig(quantization="4bit", max_steps=10, learning_rate=5e-3, max_length=128)
    m = train_adapter(str(tiny_llama), pairs, pairs[:4], cfg, tmp_path)
    print(f"\nQLoRA on CPU: {m}")
    assert m["quantized"] and m["steps"] == 10
    assert m["eval_loss"] < m["eval_loss_base"]
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_finetune_task_publishes_metrics_loss_and_samples(prefect_harness, planted_run):
    from prefect import flow
    from prefect.artifacts import Artifact

    @flow
    def finetune_again():  # the run is complete: artifacts without training again
        return ft.finetune(str(planted_run["dataset"]), planted_run["cfg"], str(planted_run["ws"]))

    assert finetune_again() == planted_run["summary"]
    metrics, loss, samples = (
        Artifact.get(artifact_key(k, Workspace(Path(planted_run["ws"]))))
        for k in ("finetune-metrics", "finetune-loss", "finetune-samples")
    )
    assert "eval_loss_base" in str(metrics.data)
    assert "eval_loss" in str(loss.data) and "150" in str(loss.data)
    assert "step 0" in str(samples.data) and "step 150" in str(samples.data)
