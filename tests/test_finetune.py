"""Fine-tuning the tiny student: assistant-only labels, learning on planted data, the run folder,
skipping a finished run, and the CPU QLoRA path."""

from __future__ import annotations

from pathlib import Path

import pytest

import tasks.finetune as ft
from faqforge.config import FinetuneConfig
from faqforge.records import QAPair
from faqforge.storage import Workspace, read_json, write_json, write_jsonl
from faqforge.tiny_llama import build_tiny_llama

# Twenty made-up facts the random model cannot know: only fine-tuning can put them there.
THINGS = [
    "kettle",
    "printer",
    "badge",
    "locker",
    "bicycle",
    "laptop",
    "umbrella",
    "stapler",
    "monitor",
    "chair",
    "desk",
    "lamp",
    "phone",
    "mug",
    "kayak",
    "tent",
    "drone",
    "piano",
    "scooter",
    "camera",
]
COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white", "pink", "grey"]
# lr 5e-3: at the config default (2e-3) 200 steps only reach loss ~1.3 on this data.
FAST = {"max_steps": 150, "learning_rate": 5e-3, "max_length": 128}


def planted_pairs() -> list[QAPair]:
    return [
        QAPair(
            id=f"p{i}",
            question=f"What colour is the {thing}?",
            answer=f"The {thing} is {COLOURS[i % len(COLOURS)]}.",
            doc_id="d",
            chunk_id=f"c{i}",
            source="planted.md",
            prompt_version="test",
            teacher="planted",
        )
        for i, thing in enumerate(THINGS)
    ]


def publish_planted(root: Path, version: str = "ds-planted") -> Path:
    """A published dataset folder; eval repeats training questions (memorisation is the test)."""
    pairs = planted_pairs()
    write_jsonl(root / "train.jsonl", pairs)
    write_jsonl(root / "eval.jsonl", pairs[:8])
    write_json(root / "manifest.json", {"version": version, "content_hash": "test"})
    return root


def tiny_model(tmp_path_factory) -> Path:
    """The tiny Llama, built once per session under its base temp (the build is idempotent)."""
    return build_tiny_llama(tmp_path_factory.getbasetemp() / "tiny-llama")


def train_planted(tmp_path_factory) -> dict:
    """A finetune run on the planted facts, trained once per session and shared with
    test_evaluate: the second caller gets the finished run (same dataset + config)."""
    ws = tmp_path_factory.getbasetemp() / "ws-planted"
    dataset = ws / "datasets" / "ds-planted"
    if not (dataset / "manifest.json").is_file():
        publish_planted(dataset)
    cfg = FinetuneConfig(base_model=str(tiny_model(tmp_path_factory)), **FAST)
    summary = ft.finetune.fn(str(dataset), cfg, str(ws))
    return {"summary": summary, "ws": ws, "cfg": cfg, "dataset": dataset}


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory)


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    return train_planted(tmp_path_factory)


def test_assistant_only_loss_masks_the_prompt(tiny_llama, tmp_path):
    pairs = planted_pairs()[:2]
    trainer = ft.build_trainer(str(tiny_llama), pairs, pairs, FinetuneConfig(max_steps=1), tmp_path)
    tok = trainer.processing_class
    for row, pair in zip(trainer.train_dataset, pairs, strict=False):
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
    s, ws = planted_run["summary"], planted_run["ws"]
    run_dir = Path(s["run_dir"])
    assert run_dir == ws / "runs" / s["run_id"] and s["run_id"].startswith("ft-")
    # test_evaluate may already have added eval/ to the shared run.
    assert {p.name for p in run_dir.iterdir()} - {"eval"} == {
        "adapter",
        "manifest.json",
        "train_metrics.json",
    }
    adapter = set(p.name for p in Path(s["adapter_dir"]).iterdir())
    assert {
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        ft.SUCCESS,
    } <= adapter
    manifest = read_json(run_dir / "manifest.json")
    assert manifest["dataset_version"] == s["dataset_version"] == "ds-planted"
    assert manifest["dataset_dir"] == str(planted_run["dataset"])
    assert manifest["base_model"] == planted_run["cfg"].base_model
    assert manifest["config"] == planted_run["cfg"].model_dump(mode="json")
    assert manifest["metrics"] == s["metrics"] == read_json(run_dir / "train_metrics.json")
    assert Workspace(ws).read_pointer("runs/LATEST") == s["run_id"]


@pytest.mark.slow
def test_second_call_with_same_inputs_skips_training(planted_run, monkeypatch):
    def must_not_train(*_args, **_kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(ft, "train_adapter", must_not_train)
    again = ft.finetune.fn(str(planted_run["dataset"]), planted_run["cfg"], str(planted_run["ws"]))
    assert again == planted_run["summary"]


def test_run_id_follows_dataset_and_config():
    cfg = FinetuneConfig()
    assert ft.run_id("v1", cfg) == ft.run_id("v1", FinetuneConfig())
    assert ft.run_id("v1", cfg) != ft.run_id("v2", cfg)
    assert ft.run_id("v1", cfg) != ft.run_id("v1", FinetuneConfig(lora_r=8))


def test_failed_training_leaves_no_adapter(tmp_path, tiny_llama, monkeypatch):
    def crash(_base, _train, _eval, _cfg, out_dir):
        (out_dir / "adapter").mkdir()
        (out_dir / "adapter" / "adapter_model.safetensors").write_bytes(b"half")
        raise RuntimeError("killed mid-training")

    monkeypatch.setattr(ft, "train_adapter", crash)
    dataset = publish_planted(tmp_path / "ds")
    cfg = FinetuneConfig(base_model=str(tiny_llama))
    with pytest.raises(RuntimeError, match="killed"):
        ft.finetune.fn(str(dataset), cfg, str(tmp_path / "ws"))
    run_dir = tmp_path / "ws" / "runs" / ft.run_id("ds-planted", cfg)
    assert list(run_dir.iterdir()) == []  # no adapter, no staging leftovers, no manifest
    assert Workspace(tmp_path / "ws").read_pointer("runs/LATEST") is None


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="published dataset folder"):
        ft.finetune.fn(str(tmp_path), FinetuneConfig(), str(tmp_path / "ws"))


@pytest.mark.slow
def test_qlora_4bit_trains_on_cpu(tiny_llama, tmp_path):
    pairs = planted_pairs()
    cfg = FinetuneConfig(quantization="4bit", max_steps=10, learning_rate=5e-3, max_length=128)
    m = ft.train_adapter(str(tiny_llama), pairs, pairs[:4], cfg, tmp_path)
    print(f"\nQLoRA on CPU: {m}")
    assert m["quantized"] and m["steps"] == 10
    assert m["eval_loss"] < m["eval_loss_base"]
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
