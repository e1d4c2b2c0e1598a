"""Fine-tune the student on a published dataset: a LoRA (CPU) or QLoRA (CUDA) adapter.

``train_run`` gives each (dataset version, config) one run folder and trains into it unless
its adapter is complete; ``resume=True`` continues from the last checkpoint of a killed run.
One CUDA device or CPU trains in this process; more than one CUDA device runs the same
spec under ``accelerate launch``. The recipe lives in ``tasks/training/`` (data, estimate,
recipe, callbacks, outputs, launch). ``finetune`` is the Prefect task: it adds the metrics,
loss history and sample answers as artifacts of the flow run.

Run folder (``runs/<run-id>/``)::

    manifest.json        dataset version + content hash, base model, config, metrics, outputs
    train_spec.json      everything needed to re-run: python -m tasks.training.launch <it>
    train_metrics.json   losses, steps, tokens, runtime, trainable parameters, estimate
    trainer_state.json   the trainer's log history (train/eval loss per step)
    loss_curve.png       train and eval loss against optimiser steps
    model_card.md        base model, dataset, hyper-parameters, metrics, intended use
    samples/step-N.jsonl greedy answers to a few eval questions at each evaluation
    adapter/             adapter_model.safetensors, adapter_config.json, tokenizer,
                         chat_template.jinja, README.md (the card), _SUCCESS (written last)
    merged/              base + adapter as plain weights (only with ``merge: true``)
    trainer/checkpoint-N every ``save_steps``: what ``--resume`` continues from
    eval/                written by tasks.evaluate.stage

    faqforge run finetune --set finetune.max_steps=50 [--resume]
"""

from __future__ import annotations

import logging
import subprocess
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, TypedDict

from prefect import task

from faqforge.artifacts import artifact_key, cell, embed_image
from faqforge.config import FinetuneConfig, stable_hash
from faqforge.locking import workspace_lock
from faqforge.storage import (
    RunManifest,
    Workspace,
    iter_jsonl,
    read_json,
    write_run_manifest,
)
from faqforge.tasking import in_prefect_run
from tasks.training.launch import TrainSpec, launch_command, run_training

log = logging.getLogger(__name__)


def run_id(dataset_version: str, cfg: FinetuneConfig) -> str:
    """Same dataset version and config → same run id, so a re-run finds the finished adapter.

    ``cfg.base_model`` names the base; the built-in model's path is left out so that moving
    the workspace does not change the id.
    """
    return "ft-" + stable_hash(
        {"dataset": dataset_version, "config": cfg.model_dump(mode="json")}, length=12
    )


def cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def gpu_slots(cfg: FinetuneConfig, devices: int) -> AbstractContextManager[Any]:
    """One slot per GPU used of the Prefect global limit ``finetune.gpu_concurrency_limit``,
    held while training, so runs from any deployment queue for the GPU instead of sharing it.
    Strict: a limit that does not exist is an error, not a silently unlimited run."""
    if cfg.gpu_concurrency_limit is None:
        return nullcontext()
    from prefect.concurrency.sync import concurrency

    return concurrency(cfg.gpu_concurrency_limit, occupy=devices, strict=True)


class Trained(TypedDict):
    """What finetune returns, and the finetune flow (a plain dict, checked by mypy)."""

    run_id: str
    run_dir: str
    adapter_dir: str
    dataset_version: str
    metrics: dict[str, Any]


def train_run(
    dataset_dir: Path,
    cfg: FinetuneConfig,
    ws: Workspace,
    resume: bool = False,
    env_overrides: dict[str, Any] | None = None,
) -> Trained:
    """Train into ``runs/<run-id>/`` unless its adapter is complete; return the run summary.

    ``env_overrides``: what ``FAQFORGE__*`` variables changed in the config, for the manifest.
    """
    from faqforge.models import resolve_base_model

    manifest = _dataset_manifest(dataset_dir)
    version = str(manifest["version"])
    dataset = {
        "version": version,
        "content_hash": manifest.get("content_hash"),
        "dir": str(dataset_dir),
    }
    rid = run_id(version, cfg)
    run_dir = ws.runs / rid
    adapter_dir = run_dir / "adapter"
    base_model = resolve_base_model(cfg, ws)
    # Two trainings of one run id (a chained run and a rerun from the UI) would write the
    # same checkpoints: the second fails at once, naming the first.
    with workspace_lock(ws.root, f"finetune-{rid}"):
        metrics = _train_unless_complete(rid, dataset, base_model, cfg, ws, resume)
    merged = run_dir / "merged"
    run_manifest = RunManifest(
        run_id=rid,
        dataset_version=dataset["version"],
        dataset_content_hash=dataset["content_hash"],
        dataset_dir=dataset["dir"],
        base_model=base_model,
        config=cfg.model_dump(mode="json"),
        env_overrides=env_overrides or {},
        metrics=metrics,
        adapter_dir=str(adapter_dir),
        merged_dir=str(merged) if merged.is_dir() else None,
    )
    write_run_manifest(ws, run_dir, run_manifest)
    ws.write_pointer(ws.RUNS_LATEST, rid)
    return {
        "run_id": rid,
        "run_dir": str(run_dir),
        "adapter_dir": str(adapter_dir),
        "dataset_version": version,
        "metrics": metrics,
    }


def _train_unless_complete(
    rid: str,
    dataset: dict[str, Any],
    base_model: str,
    cfg: FinetuneConfig,
    ws: Workspace,
    resume: bool,
) -> dict[str, Any]:
    """Train run ``rid`` unless its adapter is complete; return its training metrics."""
    run_dir = ws.runs / rid
    adapter_dir = run_dir / "adapter"
    if (adapter_dir / ws.SUCCESS).is_file():
        log.info("run %s already has a complete adapter; skipping training", rid)
        return read_json(run_dir / "train_metrics.json")
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = TrainSpec(
        run_id=rid,
        base_model=base_model,
        dataset=dataset,
        run_dir=str(run_dir),
        cache_dir=str(ws.tokenized_cache),
        config=cfg.model_dump(mode="json"),
        resume=resume,
    )
    spec_path = spec.save(run_dir / "train_spec.json")
    devices = cuda_devices()
    with gpu_slots(cfg, max(1, devices)):
        if devices > 1:
            subprocess.run(launch_command(spec_path, devices), check=True)
            metrics = read_json(run_dir / "train_metrics.json")
        else:
            metrics = run_training(spec)
    (adapter_dir / ws.SUCCESS).write_text(rid + "\n")  # last: the adapter is complete
    return metrics


def _dataset_manifest(dataset_dir: Path) -> dict[str, Any]:
    path = dataset_dir / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no dataset manifest; pass a published dataset folder (datasets/<version>/)"
        )
    manifest = read_json(path)
    if "version" not in manifest:
        raise ValueError(f"{path}: manifest has no 'version'; was the dataset published?")
    return manifest


def metrics_markdown(summary: Trained, ws: Workspace) -> str:
    rows = "\n".join(f"| {k} | {cell(v)} |" for k, v in sorted(summary["metrics"].items()))
    return (
        f"# Fine-tune run `{summary['run_id']}`\n\n"
        f"Dataset version `{summary['dataset_version']}`; adapter "
        f"`{ws.relative(summary['adapter_dir'])}`.\n\n![loss curve](loss_curve.png)\n\n"
        f"| metric | value |\n|---|---|\n{rows}\n"
    )


SAMPLE_CHARS = 200  # per answer in the artifact; the samples/ files hold the whole text


def samples_markdown(run_dir: Path, ws: Workspace) -> str | None:
    """The sample answers of the first and the last evaluation, one short block per question
    (a four-column table of long answers overflows the UI's width)."""
    files = sorted((run_dir / "samples").glob("step-*.jsonl"))
    if not files:
        return None
    first, last = list(iter_jsonl(files[0])), list(iter_jsonl(files[-1]))
    lines = [
        f"# Sample answers, step {first[0]['step']} and step {last[0]['step']}",
        "",
        f"Whole answers: `{ws.relative(files[0])}`, `{ws.relative(files[-1])}`.",
    ]
    for a, b in zip(first, last, strict=False):
        lines += [
            "",
            f"**{cell(a['question'], SAMPLE_CHARS)}**",
            f"- reference: {cell(a['reference'], SAMPLE_CHARS)}",
            f"- step {a['step']}: {cell(a['answer'], SAMPLE_CHARS)}",
            f"- step {b['step']}: {cell(b['answer'], SAMPLE_CHARS)}",
        ]
    return "\n".join(lines) + "\n"


def publish_artifacts(summary: Trained, ws: Workspace) -> None:
    """Metrics, loss history and sample answers as artifacts of the current Prefect run."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    run_dir = Path(summary["run_dir"])
    create_markdown_artifact(
        key=artifact_key("finetune-metrics", ws),
        markdown=embed_image(metrics_markdown(summary, ws), run_dir),
        description=f"training metrics of run {summary['run_id']}",
    )
    history = read_json(run_dir / "trainer_state.json")["log_history"]
    create_table_artifact(
        key=artifact_key("finetune-loss", ws),
        table=[
            {"step": e["step"], "loss": e.get("loss"), "eval_loss": e.get("eval_loss")}
            for e in history
            if "loss" in e or "eval_loss" in e
        ],
        description=f"train and eval loss per step, run {summary['run_id']}",
    )
    if (samples := samples_markdown(run_dir, ws)) is not None:
        create_markdown_artifact(
            key=artifact_key("finetune-samples", ws),
            markdown=samples,
            description=f"sample answers before and after training, run {summary['run_id']}",
        )


@task(name="finetune")
def finetune(
    dataset_dir: str,
    cfg: FinetuneConfig,
    workspace: str,
    resume: bool = False,
    env_overrides: dict[str, Any] | None = None,
) -> Trained:
    """Train (or find) the adapter for this dataset version and config; return its run summary."""
    ws = Workspace(Path(workspace))
    summary = train_run(Path(dataset_dir), cfg, ws, resume, env_overrides)
    if in_prefect_run():
        publish_artifacts(summary, ws)
    return summary
