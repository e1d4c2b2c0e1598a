"""One real refresh → finetune → evaluate chain on three sample documents, mirrored to a
file:// remote: what the lineage and remote-storage tests read (built once per session by
the ``lineage_chain`` fixture in conftest)."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "faqforge" / "sample_corpus"

# Tiny but real: 2 optimiser steps, 3 eval items per probe (6 in all), no embedding model
# for dedup.
TINY = [
    "dedup.semantic=false",
    "finetune.max_steps=2",
    "finetune.batch_size=2",
    "finetune.max_length=128",
    "finetune.sample_questions=0",
    "evaluate.max_items=3",
    "evaluate.bootstrap_resamples=100",
    "evaluate.max_new_tokens=16",
]


def run_chain(root: Path) -> dict:
    """refresh, finetune, evaluate on three sample documents into ``root/ws``, mirrored to
    ``file://root/remote`` with the Prefect task results kept there too."""
    from prefect.settings import PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK, temporary_settings

    from faqforge.config import StorageConfig
    from faqforge.remote import save_result_storage
    from flows.evaluate import evaluate_flow
    from flows.finetune import finetune_flow
    from flows.refresh import refresh

    corpus = root / "corpus"
    corpus.mkdir()
    for name in ("overview.md", "finetuning.md", "operations.md"):
        shutil.copy(SAMPLE / name, corpus / name)
    remote = f"file://{root / 'remote'}"
    common = {
        "config": "configs/tiny-llama_lora_cpu.yaml",
        "overrides": [*TINY, f"storage.remote_url={remote}"],
        "workspace": str(root / "ws"),
    }
    results_block = save_result_storage(StorageConfig(remote_url=remote), "lineage-test")
    states = {}
    with temporary_settings({PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK: results_block}):
        states["refresh"] = refresh(source=str(corpus), **common, return_state=True)
        dataset = states["refresh"].result()
        states["finetune"] = finetune_flow(dataset=dataset["version"], **common, return_state=True)
        run = states["finetune"].result()
        states["evaluate"] = evaluate_flow(run=run["run_id"], **common, return_state=True)
        states["evaluate"].result()
    return {
        "root": root,
        "ws": root / "ws",
        "remote": remote,
        "common": common,
        "corpus": corpus,
        "dataset": dataset,
        "run": run,
        "flow_runs": {k: s.state_details.flow_run_id for k, s in states.items()},
    }
