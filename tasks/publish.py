"""Publish a validated dataset version: ``datasets/<version>/`` appears whole or not at all.

A version folder holds ``train.jsonl``, ``eval.jsonl``, ``rejections.jsonl`` (every record
that left the pipeline, with stage and reason), the chat files ``train.messages.jsonl`` and
``eval.messages.jsonl`` (``faqforge/dataset_formats.py``), the dataset card ``README.md``
(``tasks/dataset_card.py``), ``validation.md``/``validation.json``, ``diff.json`` (added /
removed / changed pairs and retention by stage against the previous version,
``tasks/diff.py``) and ``manifest.json``
(inputs, config hash, code version, per-stage counts, teacher usage, eval version).
Order: the eval version folder (``tasks/split_registry.py``), the dataset folder, then
``datasets/LATEST``, then the eval registry's state, each switched only once complete.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

from prefect import task

from faqforge.artifacts import artifact_key
from faqforge.config import PipelineConfig, stable_hash
from faqforge.dataset_formats import chat_file, messages_row
from faqforge.integrity import DamagedFile, read_json_object
from faqforge.lineage import code_version
from faqforge.records import (
    KNOWLEDGE,
    UNSEEN_DOCUMENTS,
    Document,
    EvalItem,
    QAPair,
    Record,
    Rejection,
)
from faqforge.stage import StageOutput
from faqforge.storage import (
    Workspace,
    atomic_write_text,
    file_hash,
    iter_jsonl,
    publish_dir,
    read_json,
    workspace_relative,
    write_json,
    write_jsonl,
)
from faqforge.tasking import in_prefect_run
from faqforge.teachers.ledger import run_ledger
from tasks.dataset_card import render_card
from tasks.diff import (
    dataset_diff,
    diff_markdown,
    previous_stages,
    read_version,
    retention,
    rows_of,
)
from tasks.generate import GenerateStats
from tasks.split import SplitStats
from tasks.split_registry import (
    EVAL_STATE,
    eval_state,
    eval_versions,
    save_eval_version,
    write_state,
)
from tasks.validate import Validation, ValidationReport, report_markdown

CARD = "README.md"
# Files that describe a version rather than hold it: kept when it is published again.
DESCRIPTIONS = ("validation.json", "validation.md", CARD)


def dataset_version(
    documents: list[Document], cfg: PipelineConfig, prompt_version: str, data: StageOutput
) -> str:
    """Content-derived id: the same documents, config, prompt and data give the same version.

    ``data`` (the decontaminated split) enters by its file hashes: the same documents give
    other data under another frozen eval split.

    >>> # dataset_version(docs, cfg, "p1", out) == dataset_version(docs, cfg, "p1", out)
    """
    inputs = sorted((d.source, d.content_hash) for d in documents)
    parts = [inputs, cfg.dataset_hash(), prompt_version, cfg.teacher.model, data.hashes]
    return "ds-" + stable_hash(parts, 12)


def teacher_usage(generate: StageOutput, cfg: PipelineConfig) -> dict[str, Any]:
    """This run's teacher calls: ``requests`` counts only calls actually sent."""
    stats = generate.stats_as(GenerateStats).model_dump()
    return {
        "kind": cfg.teacher.kind,
        "model": stats["teacher"],
        **{
            k: stats[k]
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
    validation: Validation,
    previous: str | None,
    eval_info: dict[str, Any],
    diff: dict[str, Any],
) -> dict[str, Any]:
    generate = next(s for s in stages if s.stage == "generate")
    return {
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "previous_version": previous,
        "config_hash": cfg.dataset_hash(),
        "config": cfg.dump(),
        "env_overrides": cfg.env_overrides,  # also in config: named here, where it is read
        "code_version": code_version(),
        "source": str(cfg.source),
        "documents": [
            {"doc_id": d.doc_id, "source": d.source, "content_hash": d.content_hash}
            for d in sorted(documents, key=lambda d: d.source)
        ],
        "prompt_version": generate.stats_as(GenerateStats).prompt_version,
        "teacher": {
            **teacher_usage(generate, cfg),
            "ledger": run_ledger(
                {s.stage: s.stats["ledger"] for s in stages if "ledger" in s.stats},
                cfg.teacher.token_budget,
            ),
        },
        "stages": {s.stage: s.counts.as_dict() for s in stages},
        # The stage folders (stages/<stage>/<key>/) it was built from, with their file hashes.
        "stage_outputs": {s.stage: {"key": s.key, "sha256": s.hashes} for s in stages},
        # Curated pairs per heading, and what ended with none (curate's coverage report).
        "coverage": next((s.stats.get("coverage") for s in stages if s.stage == "curate"), None),
        "files": files,
        "content_hash": stable_hash({n: f["sha256"] for n, f in files.items()}),
        "validation": validation.model_dump(mode="json"),
        "eval": eval_info,
        "diff": {  # counts; the pairs themselves and retention by stage are in diff.json
            k: v if isinstance(v, int | float | None) else len(v)
            for k, v in diff.items()
            if k != "retention"
        },
    }


def publish_dataset(
    ws: Workspace,
    version: str,
    train: list[QAPair],
    eval_: list[EvalItem],
    rejections: list[Rejection],
    manifest_fn: Callable[[dict[str, dict[str, Any]]], dict[str, Any]],
    extras: dict[str, Any],
) -> Path:
    """Write a version folder atomically and point LATEST at it.

    Beside the records: the chat files (``dataset_formats``), the validation report, the
    eval state and the card (``README.md``, written last from the manifest and listed in it,
    outside its ``content_hash``). ``extras``: ``diff``, ``state``, ``system_prompt``,
    ``validation`` (the report's dict).
    A version that already exists should hold the same data (its id is content-derived):
    its records are rewritten in place, each atomically and with the same bytes, so one
    damaged on disk is repaired, and its manifest and diff report this run's teacher usage.
    Its validation files and card are kept while they match the manifest: they describe the
    first publication, and rewriting them with other bytes (another run validates against
    another previous version) would let a reader see a file that its manifest does not.
    """
    final = ws.datasets / version
    staging = final if final.is_dir() else ws.staging(f"dataset-{version}")
    files: dict[str, dict[str, Any]] = {}
    named: list[tuple[str, Sequence[Record | dict[str, Any]]]] = [
        ("train.jsonl", train),
        ("eval.jsonl", eval_),
        ("rejections.jsonl", rejections),
    ]
    for split, pairs in (("train", train), ("eval", eval_)):
        named.append((chat_file(split), [messages_row(p, extras["system_prompt"]) for p in pairs]))
    for name, rows in named:
        files[name] = {"rows": write_jsonl(staging / name, rows)}
    kept = verified_files(final, DESCRIPTIONS) if staging is final else {}
    report = ValidationReport(**extras["validation"])
    if "validation.json" not in kept:
        write_json(staging / "validation.json", extras["validation"])
    if "validation.md" not in kept:
        atomic_write_text(staging / "validation.md", report_markdown(report, version) + "\n")
    write_json(staging / "diff.json", extras["diff"])
    # The eval state this version leaves: `faqforge datasets repair` restores it from here.
    write_json(staging / EVAL_STATE, extras["state"])
    for name in (*files, "validation.json", "validation.md"):
        path = staging / name
        files.setdefault(name, {}).update(sha256=file_hash(path), bytes=path.stat().st_size)
    manifest = manifest_fn(files)
    if CARD not in kept:
        atomic_write_text(staging / CARD, render_card(manifest, rejections))
    manifest["files"][CARD] = {"sha256": file_hash(staging / CARD)}
    write_json(staging / "manifest.json", manifest)
    if staging is not final:
        publish_dir(staging, final)
    ws.write_pointer(ws.DATASETS_LATEST, version)
    return final


# What each probe measures and which decontamination rules keep training away from it: in
# every manifest, so a reader of the dataset knows what its eval numbers can mean.
PROBE_RULES = {
    KNOWLEDGE: {
        "measures": "held-out phrasings of facts in training documents: did fine-tuning teach "
        "the fact, asked in words the model never trained on (the headline)",
        "decontamination": "question-level only: no training question equal to a probe "
        "question after normalisation, or with word-pair Jaccard >= "
        "decontaminate.question_threshold; the fact's other phrasings stay in train "
        "(taught_by)",
    },
    UNSEEN_DOCUMENTS: {
        "measures": "whole documents held out of training: abstention and answer style, "
        "since a closed-book model cannot know them",
        "decontamination": "no training pair sharing a decontaminate.ngram_words-word n-gram, "
        "the normalised question or answer, or MinHash Jaccard >= "
        "decontaminate.minhash_threshold with an item (benchmarks: the same rules)",
    },
}


def register_eval(
    ws: Workspace, split: StageOutput, items: list[EvalItem], untaught: int
) -> dict[str, Any]:
    """Save the eval version this dataset uses; the manifest's ``eval`` block describes it."""
    stats = split.stats_as(SplitStats)
    parent = stats.eval_parent
    version = save_eval_version(ws, items, {"parent": parent})
    probes = {
        probe: {"items": sum(e.probe == probe for e in items), **rules}
        for probe, rules in PROBE_RULES.items()
    }
    probes[KNOWLEDGE]["untaught"] = untaught
    return {
        "version": version,
        "parent": parent,  # None: split afresh (first refresh or --new-eval)
        "items": len(items),
        "probes": probes,
        "carried": stats.carried_eval,
        "all_versions": eval_versions(ws),
    }


def previous_version(ws: Workspace) -> str | None:
    """The version a refresh is compared against: the one LATEST names (None: no LATEST).

    LATEST naming a version that is missing or fails its hashes stops the run: comparing
    against nothing would turn off the guard against large drops.
    """
    version = ws.resolve_dataset(None)
    if version is not None and (problem := version_damage(ws.datasets / version)) is not None:
        raise DamagedFile(ws.root / ws.DATASETS_LATEST, f"names {version}, but {problem}",
                          ws.pointer_fix(ws.DATASETS_LATEST))  # fmt: skip
    return version


def verified_files(folder: Path, names: tuple[str, ...]) -> set[str]:
    """Which of ``names`` in a published version still hash to what its manifest records."""
    try:
        recorded = read_json_object(folder / "manifest.json", required=("files",))["files"]
    except (DamagedFile, OSError):
        return set()
    return {
        name
        for name in names
        if isinstance(recorded, dict)
        and isinstance(recorded.get(name), dict)
        and (folder / name).is_file()
        and file_hash(folder / name) == recorded[name].get("sha256")
    }


def version_damage(folder: Path) -> str | None:
    """Why a published version folder cannot be trusted (None: every file matches its
    manifest)."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        return f"{manifest_path} is missing"
    try:
        manifest = read_json_object(manifest_path, required=("files",))
    except DamagedFile as exc:
        return str(exc)
    for name, meta in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            return f"{path} is missing"
        if file_hash(path) != meta.get("sha256"):
            return f"{path} differs from the sha256 its manifest records"
    return None


def compare(
    ws: Workspace, version: str, previous: str | None, train, eval_, stages: list[StageOutput]
) -> tuple[str | None, dict[str, Any]]:
    """``(previous, diff)``; re-publishing a version keeps the predecessor it had."""
    if previous == version:
        previous = read_json(ws.datasets / version / "manifest.json").get("previous_version")
    prev_dir = ws.datasets / previous if previous else None
    diff = dataset_diff(read_version(prev_dir) if prev_dir else {}, rows_of(train, eval_))
    counts = {s.stage: s.counts.as_dict() for s in stages}
    diff["retention"] = retention(counts, previous_stages(prev_dir))
    return previous, diff


class Published(TypedDict):
    """What publish returns, and the refresh flow: a plain dict a Prefect run's result shows,
    checked by mypy where it is read (``flows/refresh.py``, ``faqforge/lineage.py``)."""

    version: str
    dir: str
    train: int
    eval: int
    knowledge: int
    unseen_documents: int
    rejected: int
    previous_version: str | None
    eval_version: str
    teacher: dict[str, Any]


@task(name="publish")
def publish(
    stages: list[StageOutput],
    validation: Validation,
    cfg: PipelineConfig,
    workspace: str,
    previous: str | None = None,
) -> Published:
    """Gather the stages' outputs and rejections into a published dataset version.

    ``previous`` is the version validation compared against (``previous_version``).
    """
    ws = Workspace(Path(workspace))
    by_name = {s.stage: s for s in stages}
    documents = by_name["ingest"].read("documents", Document)
    final = by_name["decontaminate"]
    train, eval_ = final.read("train", QAPair), final.read("eval", EvalItem)
    rejections = [
        r for s in stages if "rejections" in s.files for r in s.read("rejections", Rejection)
    ]
    prompt_version = by_name["generate"].stats_as(GenerateStats).prompt_version
    version = dataset_version(documents, cfg, prompt_version, final)
    previous, diff = compare(ws, version, previous, train, eval_, stages)
    untaught = final.stats.get("knowledge_untaught", 0)
    eval_info = register_eval(ws, by_name["split"], eval_, untaught)

    def manifest_fn(files: dict[str, dict[str, Any]]) -> dict[str, Any]:
        manifest = build_manifest(
            version, cfg, documents, stages, files, validation, previous, eval_info, diff
        )
        return workspace_relative(ws, manifest)  # the corpus `source` stays whole: lineage

    train_docs = [r["doc_id"] for r in iter_jsonl(by_name["split"].path("train_docs"))]
    state = eval_state(eval_info["version"], train_docs)
    report = read_json(Path(validation.report))
    report["data_docs"] = report["data_docs"] and ws.relative(report["data_docs"])
    extras = {"diff": diff, "state": state, "system_prompt": cfg.finetune.system_prompt,
              "validation": report}  # fmt: skip
    path = publish_dataset(ws, version, train, eval_, rejections, manifest_fn, extras)
    write_state(ws, state["version"], state["train_docs"])
    summary: Published = {
        "version": version,
        "dir": str(path),
        "train": len(train),
        "eval": len(eval_),
        "knowledge": eval_info["probes"][KNOWLEDGE]["items"],
        "unseen_documents": eval_info["probes"][UNSEEN_DOCUMENTS]["items"],
        "rejected": len(rejections),
        "previous_version": previous,
        "eval_version": eval_info["version"],
        "teacher": teacher_usage(by_name["generate"], cfg),
    }
    if in_prefect_run():
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(
            key=artifact_key("dataset-version", ws),
            markdown=(
                f"# Dataset {version}\n\n`{path}`\n\n| split | rows |\n|---|---|\n"
                f"| train | {len(train)} |\n| eval: knowledge probe | {summary['knowledge']} |\n"
                f"| eval: unseen documents | {summary['unseen_documents']} |\n"
                f"| rejected | {len(rejections)} |\n"
                f"\nPrevious version: {previous or '—'}; eval version {eval_info['version']}"
                f" (parent {eval_info['parent'] or '—, split afresh'})\n"
            ),
            description=f"published dataset {version}",
        )
        create_markdown_artifact(
            key=artifact_key("dataset-diff", ws),
            markdown=diff_markdown(version, previous, diff, diff["retention"]),
            description=f"dataset {version} against {previous or 'nothing'}",
        )
    return summary
