"""``faqforge datasets list|show|diff``: what each published version holds, read from its
manifest and files alone (no Prefect, no model), so it answers in a second."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from faqforge.integrity import POINTER_VALUE
from faqforge.storage import Workspace, read_json


class UnknownVersion(LookupError):
    """A version id that is not a published folder of this workspace."""


def version_dirs(ws: Workspace) -> list[Path]:
    """Published versions, oldest first (a folder is published once its manifest exists)."""
    if not ws.datasets.is_dir():
        return []
    found = [d for d in ws.datasets.glob("ds-*") if (d / "manifest.json").is_file()]
    return sorted(found, key=lambda d: (read_json(d / "manifest.json")["created_at"], d.name))


def version_dir(ws: Workspace, version: str) -> Path:
    folder = ws.datasets / version
    if not POINTER_VALUE.fullmatch(version) or not (folder / "manifest.json").is_file():
        known = ", ".join(d.name for d in version_dirs(ws)) or "none"
        raise UnknownVersion(f"{version!r} is not a published version in {ws.datasets} "
                             f"(published: {known})")  # fmt: skip
    return folder


def summary(manifest: dict[str, Any]) -> dict[str, Any]:
    files, probes = manifest["files"], manifest["eval"]["probes"]
    return {
        "version": manifest["version"],
        "created_at": manifest["created_at"],
        "train": files["train.jsonl"]["rows"],
        "knowledge": probes["knowledge"]["items"],
        "unseen_documents": probes["unseen_documents"]["items"],
        "rejected": files["rejections.jsonl"]["rows"],
        "documents": len(manifest["documents"]),
        "previous": manifest.get("previous_version"),
    }


def list_text(ws: Workspace) -> str:
    rows = [summary(read_json(d / "manifest.json")) for d in version_dirs(ws)]
    if not rows:
        return f"no published versions in {ws.datasets}\n"
    now = ws.resolve_dataset(None)
    head = f"{'':2}{'version':<16} {'created (UTC)':<20} {'docs':>5} {'train':>6} " \
           f"{'knowl.':>6} {'unseen':>6} {'rejected':>8}"  # fmt: skip
    lines = [head] + [
        f"{'*' if r['version'] == now else ' ':2}{r['version']:<16} {r['created_at'][:19]:<20} "
        f"{r['documents']:>5} {r['train']:>6} {r['knowledge']:>6} {r['unseen_documents']:>6} "
        f"{r['rejected']:>8}"
        for r in rows
    ]
    return "\n".join([*lines, "* LATEST"]) + "\n"


def show_text(ws: Workspace, version: str) -> str:
    folder = version_dir(ws, version)
    m = read_json(folder / "manifest.json")
    s, teacher, validation = summary(m), m["teacher"], m["validation"]
    lines = [
        f"dataset {version}{' (LATEST)' if ws.resolve_dataset(None) == version else ''}, created "
        f"{m['created_at']}, previous {s['previous'] or 'none'}",
        f"  {folder}",
        f"  {s['documents']} documents from {m['source']}",
        f"  teacher {teacher['model']} ({teacher['kind']}), prompt {m['prompt_version']}",
        f"  train {s['train']} pairs; eval version {m['eval']['version']}: "
        f"{s['knowledge']} knowledge + {s['unseen_documents']} unseen-documents items",
        f"  validation: {validation['successful']}/{validation['evaluated']} expectations",
        "  stages (in → out, rejected by reason):",
    ]
    for stage, c in m["stages"].items():
        why = ", ".join(f"{k} {v}" for k, v in c["rejected"].items())
        lines.append(f"    {stage:<14} {c['in']:>6} → {c['out']:<6} {why}")
    return "\n".join(lines) + "\n"


def diff_text(ws: Workspace, a: str, b: str, shown: int = 10) -> str:
    from tasks.diff import dataset_diff, read_version

    diff = dataset_diff(read_version(version_dir(ws, a)), read_version(version_dir(ws, b)))
    lines = [
        f"{a} → {b}: {diff['previous_rows']} → {diff['rows']} pairs; "
        f"{len(diff['added'])} added, {len(diff['removed'])} removed, "
        f"{len(diff['changed'])} changed, {diff['unchanged']} unchanged"
    ]
    for kind, sign in (("added", "+"), ("removed", "-")):
        rows = diff[kind]
        lines += [f"  {sign} {r['id']} ({r['split']}): {r['question']}" for r in rows[:shown]]
        lines += [f"  … {len(rows) - shown} more {kind}"] if len(rows) > shown else []
    lines += [
        f"  ~ {c['previous_id']} → {c['id']} ({c['split']}): {', '.join(c['fields']) or 'id'}"
        for c in diff["changed"][:shown]
    ]
    return "\n".join(lines) + "\n"
