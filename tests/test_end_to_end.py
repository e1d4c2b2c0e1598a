"""`faqforge run all` through the real CLI: refresh → finetune → evaluate on a small corpus."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from faqforge.storage import read_json
from tasks.evaluate.metrics import rouge_l

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "faqforge" / "sample_corpus"


def faqforge(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh process, with no Prefect or faqforge settings from this one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FAQFORGE_"))}
    argv = [sys.executable, "-m", "faqforge.cli", *args]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_run_all_produces_dataset_adapter_and_report(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for path in sorted(SAMPLE.glob("*.md"))[:4]:
        shutil.copy(path, corpus / path.name)
    ws = tmp_path / "ws"
    out = faqforge(
        *("run", "all", "--config", "configs/tiny-llama_lora_cpu.yaml", "--source", str(corpus)),
        *("--workspace", str(ws), "--set", "finetune.max_steps=60"),
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]

    version = (ws / "datasets" / "LATEST").read_text().strip()
    run_id = (ws / "runs" / "LATEST").read_text().strip()
    run_dir = ws / "runs" / run_id
    # The CLI says where everything is.
    for shown in (ws / "datasets" / version, run_dir / "adapter", run_dir / "eval" / "report.md"):
        assert str(shown) in out.stdout

    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert (run_dir / "adapter" / "tokenizer.json").is_file()
    assert read_json(run_dir / "manifest.json")["dataset_version"] == version
    # Portable: published manifests, the run manifest, card and adapter config name no folder
    # of this machine's workspace (the base model by its identity, builtin:tiny-llama).
    for path in (
        ws / "datasets" / version / "manifest.json",
        run_dir / "manifest.json",
        run_dir / "adapter" / "README.md",
        run_dir / "adapter" / "adapter_config.json",
    ):
        assert str(ws) not in path.read_text(), path
    adapter_config = read_json(run_dir / "adapter" / "adapter_config.json")
    assert adapter_config["base_model_name_or_path"] == "builtin:tiny-llama"
    card = (run_dir / "adapter" / "README.md").read_text()
    assert f"datasets: [{version}]" in card and "license: other" in card

    metrics = read_json(run_dir / "eval" / "metrics.json")
    # The headline probe's scores are its answers' own: each row's ROUGE-L recomputed from
    # the answer and reference it lists, and their mean is what metrics.json reports.
    with (run_dir / "eval" / "predictions.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["probe"] == metrics["probe"]]
    assert len(rows) == metrics["probes"][metrics["probe"]]["n"] > 0
    for side in ("base", "tuned"):
        assert {"exact_match", "rouge_l"} <= metrics[side].keys()
        scores = [rouge_l(r[side], r["reference"]) for r in rows]
        assert [float(r[f"rouge_l_{side}"]) for r in rows] == pytest.approx(scores)
        assert metrics[side]["rouge_l"] == pytest.approx(sum(scores) / len(scores))
    eval_manifest = read_json(run_dir / "eval" / "manifest.json")
    assert eval_manifest["dataset_version"] == version
    assert run_id in str(eval_manifest["adapter"])
    report = (run_dir / "eval" / "report.md").read_text()
    assert "rouge_l" in report and "exact_match" in report and version in report
    # The headline opens the report and the CLI's summary: what the model learned.
    assert report.splitlines()[0] == metrics["headline"] and metrics["headline"] in out.stdout
    assert "knowledge probe" in out.stdout and metrics["knowledge_lift"]["n_knowledge"] > 0

    # Lineage on these outputs: a training pair back to its file and chunk, forward to the run.
    first = (ws / "datasets" / version / "train.jsonl").read_text().splitlines()[0]
    qa_id = json.loads(first)["id"]
    shown = faqforge("lineage", qa_id, "--workspace", str(ws), "--json", timeout=120)
    assert shown.returncode == 0, shown.stderr[-3000:]
    chain = json.loads(shown.stdout)
    assert (corpus / chain["document"]["source"]).is_file()
    assert chain["chunk"]["chunk_id"] == json.loads(first)["chunk_id"]
    assert {"version": version, "split": "train"} in chain["datasets"]
    assert [r["run_id"] for r in chain["runs"]] == [run_id]
