"""A published version is taken as it is by the tools users train with next: datasets'
``load_dataset``, TRL's SFTTrainer, the hub's card parser, and each ``faqforge export``
format read back by the library that consumes it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from faqforge.cli import app
from faqforge.records import EvalItem, QAPair, Rejection
from faqforge.storage import iter_jsonl, read_json, read_records

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "faqforge" / "sample_corpus"
DOCS = ("overview.md", "glossary.txt", "configuration.md", "finetuning.md")
SYSTEM = "You answer questions about the test corpus."


@pytest.fixture(scope="module")
def version_dir(prefect_harness, tmp_path_factory) -> Path:
    from flows.refresh import refresh

    root = tmp_path_factory.mktemp("published")
    corpus = root / "corpus"
    corpus.mkdir()
    for name in DOCS:
        shutil.copy(SAMPLE / name, corpus / name)
    summary = refresh(
        config=str(ROOT / "configs" / "tiny-llama_lora_cpu.yaml"),
        overrides=[
            "dedup.semantic=false",
            "publish.license=cc-by-4.0",
            f"finetune.system_prompt={SYSTEM}",
        ],
        source=str(corpus),
        workspace=str(root / "ws"),
    )
    return Path(summary["dir"])


def records(folder: Path) -> tuple[list[QAPair], list[EvalItem]]:
    return read_records(folder / "train.jsonl", QAPair), read_records(
        folder / "eval.jsonl", EvalItem
    )


def test_load_dataset_gives_train_and_eval_chat_rows(version_dir):
    from datasets import load_dataset

    ds = load_dataset(str(version_dir))
    train, eval_ = records(version_dir)
    assert set(ds) == {"train", "eval"}  # not "test": the card's configs name the splits
    assert [r["id"] for r in ds["train"]] == [p.id for p in train]
    first = ds["eval"][0]["messages"]
    assert [m["role"] for m in first] == ["system", "user", "assistant"]
    assert first[0]["content"] == SYSTEM
    assert (first[1]["content"], first[2]["content"]) == (eval_[0].question, eval_[0].answer)
    pairs = load_dataset(str(version_dir), "pairs")["train"]
    assert pairs[0]["chunk_id"] == train[0].chunk_id  # the lineage fields, as published
    assert {r["probe"] for r in load_dataset(str(version_dir), "eval_items")["eval"]} == {
        e.probe for e in eval_
    }


def test_card_is_a_hub_dataset_card_with_the_facts(version_dir):
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(version_dir / "README.md")
    manifest = read_json(version_dir / "manifest.json")
    assert card.data.license == "cc-by-4.0"  # publish.license
    assert card.data.size_categories == ["n<1K"]
    (info,) = card.data.dataset_info
    splits = {s["name"]: s["num_examples"] for s in info["splits"]}
    assert splits == {"train": len(records(version_dir)[0]), "eval": len(records(version_dir)[1])}
    text = card.text
    for doc in manifest["documents"]:
        assert doc["content_hash"] in text and doc["source"] in text
    assert manifest["prompt_version"] in text and manifest["eval"]["version"] in text
    reasons = {r.reason for r in read_records(version_dir / "rejections.jsonl", Rejection)}
    assert reasons and all(f"| {reason} |" in text for reason in reasons)
    assert "## Known limits" in text and SYSTEM in text
    # Listed in the manifest, so a damaged card is found like any other file.
    assert manifest["files"]["README.md"]["sha256"]


def test_validation_is_published_with_the_version(version_dir):
    report = read_json(version_dir / "validation.json")
    text = (version_dir / "validation.md").read_text()
    version = version_dir.name
    assert report["success"] and f"Validation of dataset {version}: passed" in text
    stats = report["statistics"]
    assert f"{stats['successful_expectations']} of {stats['evaluated_expectations']}" in text
    assert not Path(report["data_docs"]).is_absolute()  # workspace-relative


def test_sft_trainer_trains_on_the_chat_file_without_mapping(version_dir, tmp_path):
    from datasets import load_dataset
    from trl import SFTConfig, SFTTrainer

    from faqforge.tiny_llama import build_tiny_llama

    model = build_tiny_llama(tmp_path / "model")
    ds = load_dataset("json", data_files=str(version_dir / "train.messages.jsonl"))["train"]
    args = SFTConfig(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=4,
                     use_cpu=True, bf16=False, assistant_only_loss=True, report_to=[],
                     max_length=256, save_strategy="no")  # fmt: skip
    result = SFTTrainer(model=str(model), args=args, train_dataset=ds).train()
    assert result.global_step == 2 and result.training_loss > 0


def export(version_dir: Path, fmt: str, out: Path) -> list[Path]:
    ws = version_dir.parent.parent
    res = CliRunner().invoke(
        app,
        [
            "export",
            version_dir.name,
            "--format",
            fmt,
            "--out",
            str(out),
            "--workspace",
            str(ws),
        ],
    )
    assert res.exit_code == 0, res.output
    return [Path(line) for line in res.output.split()]


def test_export_formats_load_in_their_consumers(version_dir, tmp_path):
    import datasets

    train, eval_ = records(version_dir)
    loaded = {}
    for fmt in ("messages", "alpaca", "sharegpt"):
        paths = export(version_dir, fmt, tmp_path / fmt)
        files = {p.name.split(".")[0]: str(p) for p in paths}
        loaded[fmt] = datasets.load_dataset("json", data_files=files)
    alpaca = loaded["alpaca"]["train"][0]
    assert (alpaca["instruction"], alpaca["output"], alpaca["input"]) == (
        train[0].question, train[0].answer, "")  # fmt: skip
    assert alpaca["system"] == SYSTEM
    turns = loaded["sharegpt"]["eval"][0]["conversations"]
    assert [t["from"] for t in turns] == ["system", "human", "gpt"]
    assert turns[1]["value"] == eval_[0].question
    assert loaded["messages"]["train"][0] == next(iter_jsonl(version_dir / "train.messages.jsonl"))

    parquet = export(version_dir, "parquet", tmp_path / "pq")
    pq = datasets.load_dataset("parquet", data_files={p.stem: str(p) for p in parquet})
    assert pq["train"]["id"] == [p.id for p in train] and len(pq["eval"]) == len(eval_)

    (hf,) = export(version_dir, "hf", tmp_path / "hf")
    disk = datasets.load_from_disk(str(hf))
    assert set(disk) == {"train", "eval"} and disk["eval"]["id"] == [e.id for e in eval_]


def test_datasets_commands_show_what_a_version_holds(version_dir):
    ws, version = version_dir.parent.parent, version_dir.name
    run = CliRunner().invoke
    listing = run(app, ["datasets", "list", "--workspace", str(ws)])
    assert listing.exit_code == 0 and f"* {version}" in listing.output
    train, eval_ = records(version_dir)
    shown = run(app, ["datasets", "show", version, "--workspace", str(ws)])
    assert shown.exit_code == 0 and f"train {len(train)} pairs" in shown.output
    same = run(app, ["datasets", "diff", version, version, "--workspace", str(ws)])
    assert f"0 added, 0 removed, 0 changed, {len(train) + len(eval_)} unchanged" in same.output
    missing = run(app, ["datasets", "show", "ds-000000000000", "--workspace", str(ws)])
    assert missing.exit_code == 1 and f"published: {version}" in missing.output


def test_finetune_refuses_a_file_before_any_flow_run(version_dir):
    ws = version_dir.parent.parent
    res = CliRunner().invoke(app, ["run", "finetune", "--workspace", str(ws), "--dataset",
                                   str(version_dir / "train.jsonl")])  # fmt: skip
    assert res.exit_code == 2
    assert "takes a version id, not a file" in res.output
    assert not (ws / "runs").exists()  # nothing started


def test_a_cli_run_is_tagged_and_named_for_its_corpus(version_dir):
    from prefect.client.orchestration import get_client

    ws = version_dir.parent.parent
    corpus = ws.parent / "corpus"
    config = str(ROOT / "configs" / "tiny-llama_lora_cpu.yaml")
    sets = ["dedup.semantic=false", "publish.license=cc-by-4.0", f"finetune.system_prompt={SYSTEM}"]
    args = ["run", "refresh", "--config", config, "--source", str(corpus), "--workspace", str(ws)]
    args += [arg for s in sets for arg in ("--set", s)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert version_dir.name in res.output  # unchanged corpus and config: the same version
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
    from prefect.client.schemas.sorting import FlowRunSort

    # The newest run tagged by the CLI is the one just made (filtered and sorted on the
    # server: an unfiltered read stops at the API's default limit).
    cli_runs = FlowRunFilter(tags=FlowRunFilterTags(all_=["faqforge", "cli"]))
    with get_client(sync_client=True) as client:
        (cli_run,) = client.read_flow_runs(
            flow_run_filter=cli_runs, sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=1
        )
    assert cli_run.name.startswith("refresh-") and cli_run.name.endswith(
        "-tiny-llama-lora-cpu-corpus"
    )
