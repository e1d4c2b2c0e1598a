"""``faqforge datasets repair``: put a damaged workspace's pointers back on verified data.

``datasets/LATEST`` is re-pointed to the newest published version whose every file matches
its manifest, and ``eval/STATE.json`` is rebuilt from the eval state that version recorded
(``eval_state.json``), after checking the eval version it names. Nothing else is touched:
stage folders and caches that fail their checks are rebuilt by the next refresh anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from faqforge.integrity import DamagedFile, read_json_object
from faqforge.storage import Workspace, write_json


@dataclass
class RepairReport:
    latest: str | None = None
    state: str | None = None
    actions: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # damaged versions, newest first


def _created(folder: Path) -> str:
    try:
        return str(read_json_object(folder / "manifest.json").get("created_at", ""))
    except DamagedFile:
        return ""


def repair_eval_metas(ws: Workspace, report: RepairReport) -> None:
    """Rewrite the meta.json of every eval version whose items are intact but whose meta is
    damaged; items that no longer hash to their id cannot be repaired (reported)."""
    from faqforge.records import EvalItem
    from faqforge.storage import read_records
    from tasks.split_registry import eval_root, eval_version_id, meta_damage, rewrite_meta

    root = eval_root(ws)
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not (folder / "eval.jsonl").is_file():
            continue
        try:
            items = read_records(folder / "eval.jsonl", EvalItem)
        except (ValueError, KeyError, TypeError):
            items = []
        if eval_version_id(items) != folder.name:
            report.skipped.append(f"eval version {folder.name}: its items are damaged; "
                                  "restore the folder or start a new eval split with "
                                  "--new-eval")  # fmt: skip
        elif (problem := meta_damage(folder, items)) is not None:
            rewrite_meta(ws, folder.name)
            report.actions.append(f"{folder / 'meta.json'}: rewritten from its items ({problem})")


def repair_workspace(ws: Workspace) -> RepairReport:
    from tasks.publish import version_damage
    from tasks.split_registry import EVAL_STATE, STATE, read_eval_items

    report = RepairReport()
    repair_eval_metas(ws, report)
    folders = [d for d in ws.datasets.iterdir() if d.is_dir()] if ws.datasets.is_dir() else []
    for folder in sorted(folders, key=lambda d: (_created(d), d.name), reverse=True):
        if (problem := version_damage(folder)) is not None:
            report.skipped.append(f"{folder.name}: {problem}")
            continue
        try:
            state = read_json_object(folder / EVAL_STATE, required=("version", "train_docs"))
            read_eval_items(ws, state["version"])
        except (DamagedFile, FileNotFoundError) as exc:
            report.skipped.append(f"{folder.name}: its eval state cannot be restored ({exc})")
            continue
        report.latest, report.state = folder.name, state["version"]
        break
    latest_path = ws.root / ws.DATASETS_LATEST
    if report.latest is None:
        raise DamagedFile(ws.datasets, "no published version verifies: "
                          + ("; ".join(report.skipped) or "none published"),
                          "restore the damaged version from the storage.remote_url mirror, or "
                          f"delete it and {latest_path} to publish afresh (that refresh "
                          "is compared with no previous version)")  # fmt: skip
    before = latest_path.read_bytes() if latest_path.is_file() else None
    if before is None or before.decode("utf-8", "replace").strip() != report.latest:
        ws.write_pointer(ws.DATASETS_LATEST, report.latest)
        report.actions.append(f"{latest_path}: now {report.latest} (held {before!r})")
    state_path = ws.root / STATE
    wanted = read_json_object(ws.datasets / report.latest / EVAL_STATE)
    try:
        current = read_json_object(state_path) if state_path.is_file() else None
    except DamagedFile:
        current = None
    if current != wanted:
        write_json(state_path, wanted)
        report.actions.append(f"{state_path}: rebuilt from {report.latest}/{EVAL_STATE} "
                              f"(eval version {report.state})")  # fmt: skip
    return report
