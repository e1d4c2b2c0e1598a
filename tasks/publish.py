"""Publish a validated dataset version: ``datasets/<version>/`` appears whole or not at all.

A version folder holds ``train.jsonl``, ``eval.jsonl``, ``rejections.jsonl`` (every record
that left the pipeline, with stage and reason) and ``manifest.json`` (inputs, config hash,
code version, per-stage counts, teacher usage of the run). ``datasets/LATEST`` names the
newest version and is switched only after the folder is complete.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import task

from faqforge.config import PipelineConfig, stable_hash
from faqforge.lineage import code_version
from faqforge.records import Document, QAPair, Rejection
from faqforge.stage import StageOutput
from faqforge.storage import Workspace, file_hash, publish_dir, write_json, write_jsonl
from faqforge.tasking import in_prefect_run
from faqforge.teachers.ledger import run_ledger

LATEST = "datasets/LATEST"


def dataset_version(documents: list[Document], cfg: PipelineConfig, prompt_version: str) -> str:
    """Content-derived id: the same documents, config and prompt give the same version.

    >>> # dataset_version(docs, cfg, "p1") == dataset_version(docs, cfg, "p1")
    """
    inputs = sorted((d.source, d.content_hash) for d in documents)
    return "ds-" + stable_hash([inputs, cfg.dataset_hash(), prompt_version, cfg.teacher.model], 12)


def teacher_usage(generate: StageOutput, cfg: PipelineConfig) -> dict[str, Any]:
    """This run's teacher calls: ``requests`` counts only calls actually sent."""
    return {
        "kind": cfg.teacher.kind,
        "model": generate.stats.get("teacher"),
        **{
            k: generate.stats.get(k, 0)
            for k in (
                *("requests", "cache_hits", "prompt_tokens", "completion_tokens"),
                *("left", "retired_chunks", "retired_pairs"),
            )
        },
    }


def build_manifest(
    version: str,
    cfg: PipelineConfig,
    documents: list[Document],
    stages: list[StageOutput],
    files: dict[str, dict[str, Any]],
    validation: dict[str, Any],
    previous: str | None,
) -> dict[str, Any]:
    generate = next(s for s in stages if s.stage == "generate")
    return {
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "previous_version": previous,
        "config_hash": cfg.dataset_hash(),
        "config": cfg.dump(),
        "code_version": code_version(),
        "source": str(cfg.source),
        "documents": [
            {"doc_id": d.doc_id, "source": d.source, "content_hash": d.content_hash}
            for d in sorted(documents, key=lambda d: d.source)
        ],
        "prompt_version": generate.stats.get("prompt_version"),
        "teacher": {
            **teacher_usage(generate, cfg),
            "ledger": run_ledger(
                {s.stage: s.stats["ledger"] for s in stages if "ledger" in s.stats},
                cfg.teacher.token_budget,
            ),
        },
        "stages": {s.stage: s.counts.as_dict() for s in stages},
        # Curated pairs per heading, and what ended with none (curate's coverage report).
        "coverage": next((s.stats.get("coverage") for s in stages if s.stage == "curate"), None),
        "files": files,
        "content_hash": stable_hash({n: f["sha256"] for n, f in files.items()}),
        "validation": validation,
    }


def publish_dataset(
    ws: Workspace,
    version: str,
    train: list[QAPair],
    eval_: list[QAPair],
    rejections: list[Rejection],
    manifest_fn: Callable[[dict[str, dict[str, Any]]], dict[str, Any]],
) -> Path:
    """Write a version folder atomically and point LATEST at it.

    A version that already exists holds the same data (its id is content-derived): only its
    manifest is refreshed, so it reports this run's teacher usage.
    """
    final = ws.datasets / version
    staging = final if final.is_dir() else ws.staging(f"dataset-{version}")
    files: dict[str, dict[str, Any]] = {}
    for name, rows in (("train", train), ("eval", eval_), ("rejections", rejections)):
        path = staging / f"{name}.jsonl"
        if staging is not final:
            write_jsonl(path, rows)
        files[f"{name}.jsonl"] = {"rows": len(rows), "sha256": file_hash(path)}
    write_json(staging / "manifest.json", manifest_fn(files))
    if staging is not final:
        publish_dir(staging, final)
    ws.write_pointer(LATEST, version)
    return final


@task(name="publish")
def publish(
    stages: list[StageOutput], validation: dict[str, Any], cfg: PipelineConfig, workspace: str
) -> dict[str, Any]:
    """Gather the stages' outputs and rejections into a published dataset version."""
    ws = Workspace(Path(workspace))
    by_name = {s.stage: s for s in stages}
    documents = by_name["ingest"].read("documents", Document)
    final = by_name["decontaminate"]
    train, eval_ = final.read("train", QAPair), final.read("eval", QAPair)
    rejections = [
        r for s in stages if "rejections" in s.files for r in s.read("rejections", Rejection)
    ]
    version = dataset_version(documents, cfg, by_name["generate"].stats["prompt_version"])
    previous = ws.read_pointer(LATEST)

    def manifest_fn(files: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return build_manifest(version, cfg, documents, stages, files, validation, previous)

    path = publish_dataset(ws, version, train, eval_, rejections, manifest_fn)
    summary = {
        "version": version,
        "dir": str(path),
        "train": len(train),
        "eval": len(eval_),
        "rejected": len(rejections),
        "previous_version": previous,
        "teacher": teacher_usage(by_name["generate"], cfg),
    }
    if in_prefect_run():
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(
            key="dataset-version",
            markdown=(
                f"# Dataset {version}\n\n`{path}`\n\n| split | rows |\n|---|---|\n"
                f"| train | {len(train)} |\n| eval | {len(eval_)} |\n"
                f"| rejected | {len(rejections)} |\n"
                f"\nPrevious version: {previous or '—'}\n"
            ),
            description=f"published dataset {version}",
        )
    return summary
