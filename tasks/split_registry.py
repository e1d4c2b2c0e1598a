"""The eval registry: every eval version ever published, and the frozen split of the latest.

A model is only comparable across dataset versions when it is scored on the same eval items,
so the eval split is frozen once published. Layout under the workspace:

    eval/<eval-version>/eval.jsonl   that version's eval pairs, never rewritten
    eval/<eval-version>/meta.json    parent version, split rule, eval documents, counts
    eval/STATE.json                  the current eval version and the documents held in train

An eval version id hashes its pair ids, so equal items give an equal id. ``STATE.json`` is a
pointer like ``datasets/LATEST`` and is replaced only when a dataset version is published.
Every version stays on disk: decontamination keeps training pairs away from all of them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from faqforge.config import stable_hash
from faqforge.integrity import POINTER_VALUE, DamagedFile, read_json_object, shown
from faqforge.records import KNOWLEDGE, UNSEEN_DOCUMENTS, EvalItem
from faqforge.storage import (
    Workspace,
    file_hash,
    publish_dir,
    read_records,
    write_json,
    write_jsonl,
)

STATE = "eval/STATE.json"
EVAL_STATE = "eval_state.json"  # a copy in each dataset version: what STATE was after it
log = logging.getLogger("faqforge.split_registry")


def eval_root(ws: Workspace) -> Path:
    return ws.root / "eval"


def eval_version_id(items: list[EvalItem]) -> str:
    """``ev-`` + hash of the sorted pair ids: the identity of an eval set."""
    return "ev-" + stable_hash(sorted(p.id for p in items), 12)


@dataclass(frozen=True)
class FrozenEval:
    """A published eval split: its items are kept verbatim, its documents keep their side."""

    version: str
    items: list[EvalItem]
    train_docs: frozenset[str]

    @property
    def eval_docs(self) -> frozenset[str]:
        """The documents held out whole (knowledge items come from training documents)."""
        return frozenset(p.doc_id for p in self.items if p.probe == UNSEEN_DOCUMENTS)


def frozen_state(ws: Workspace, new_eval: bool = False) -> dict[str, Any] | None:
    """The small, content-addressed state a split is frozen against (None: split afresh).

    ``{"version": "ev-…", "train_docs": [...]}``; small enough to be part of a cache key.
    Read at the start of a refresh, so a damaged state or eval version stops it there.
    """
    path = ws.root / STATE
    if new_eval or not path.is_file():
        return None
    fix = ws.pointer_fix(STATE)
    state = read_json_object(path, fix, required=("version", "train_docs"))
    docs = state["train_docs"]
    if not isinstance(docs, list) or not all(isinstance(d, str) for d in docs):
        raise DamagedFile(path, f"train_docs is not a list of document ids: {shown(docs)}", fix)
    version = state["version"]
    if not isinstance(version, str) or not POINTER_VALUE.match(version):
        raise DamagedFile(path, f"version is not an eval version id: {shown(version)}", fix)
    read_eval_items(ws, version)  # verified now, not when a split first needs it
    return {"version": version, "train_docs": sorted(docs)}


def load_frozen(ws: Workspace, state: dict[str, Any] | None) -> FrozenEval | None:
    """The items behind a ``frozen_state``; a missing version folder is an error, not a reset."""
    if state is None:
        return None
    items = read_eval_items(ws, state["version"])
    return FrozenEval(state["version"], items, frozenset(state["train_docs"]))


def read_eval_items(ws: Workspace, version: str) -> list[EvalItem]:
    """An eval version's items, checked against its id and meta: a truncated file would
    shrink the frozen split (and weaken decontamination) without a word."""
    items_path = eval_root(ws) / version / "eval.jsonl"
    # Lost items cannot be rebuilt (a new split would score models on other questions).
    lost = ("restore the folder (a storage.remote_url mirror holds it), or start a new eval "
            "split with `faqforge run refresh --new-eval`")  # fmt: skip
    if not items_path.is_file():
        raise DamagedFile(items_path, f"missing, but {ws.root / STATE} or a dataset names "
                          f"eval version {version}", lost)  # fmt: skip
    try:
        items = read_records(items_path, EvalItem)
    except (ValueError, KeyError, TypeError) as exc:
        raise DamagedFile(items_path, f"unreadable ({exc})", lost) from exc
    if eval_version_id(items) != version:
        raise DamagedFile(items_path, f"its {len(items)} items do not hash to the version id "
                          f"{version}: the frozen eval split would change", lost)  # fmt: skip
    if (problem := meta_damage(items_path.parent, items)) is not None:
        raise DamagedFile(items_path.parent / "meta.json", problem, ws.pointer_fix(STATE))
    return items


def meta_damage(folder: Path, items: list[EvalItem]) -> str | None:
    """Why an eval version's meta.json does not describe its (intact) items, or None."""
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None  # written last: a folder without it is not a complete version
    try:
        meta = read_json_object(meta_path, required=("items", "created_at"))
    except DamagedFile as exc:
        return exc.problem
    if meta["items"] != len(items):
        return f"records {meta['items']} items, eval.jsonl holds {len(items)}"
    digest = meta.get("sha256")
    if digest is not None and digest != file_hash(folder / "eval.jsonl"):
        return "eval.jsonl differs from the sha256 meta.json records"
    return None


def rewrite_meta(ws: Workspace, version: str) -> None:
    """Rebuild a damaged meta.json from its version's intact items (the parent it named is
    lost: recorded as unknown)."""
    folder = eval_root(ws) / version
    items = read_records(folder / "eval.jsonl", EvalItem)
    created = datetime.fromtimestamp((folder / "eval.jsonl").stat().st_mtime, UTC)
    write_json(folder / "meta.json", {
        **_meta(version, items, folder / "eval.jsonl"),
        "created_at": created.isoformat(timespec="microseconds"),
        "parent": None, "repaired": True,
    })  # fmt: skip


def eval_versions(ws: Workspace) -> list[str]:
    """Every complete eval version folder (meta.json is written last), oldest first."""
    root = eval_root(ws)
    if not root.is_dir():
        return []
    done = [d for d in root.iterdir() if (d / "meta.json").is_file()]
    created = {d.name: read_json_object(d / "meta.json", ws.pointer_fix(STATE),
                                        required=("created_at",))["created_at"]
               for d in done}  # fmt: skip
    return sorted(created, key=lambda name: (str(created[name]), name))


def save_eval_version(ws: Workspace, items: list[EvalItem], meta: dict[str, Any]) -> str:
    """Write an eval version folder whole (kept if it exists: equal id, equal items)."""
    version = eval_version_id(items)
    final = eval_root(ws) / version
    if not final.is_dir() or not _intact(ws, version):
        staging = ws.staging(f"eval-{version}")
        write_jsonl(staging / "eval.jsonl", items)
        write_json(staging / "meta.json", {
            **_meta(version, items, staging / "eval.jsonl"),
            "created_at": datetime.now(UTC).isoformat(timespec="microseconds"),
            **meta,
        })  # fmt: skip
        publish_dir(staging, final, replace=True)
    return version


def _meta(version: str, items: list[EvalItem], path: Path) -> dict[str, Any]:
    return {
        "version": version,
        "sha256": file_hash(path),
        "items": len(items),
        "probes": {
            probe: sum(p.probe == probe for p in items) for probe in (KNOWLEDGE, UNSEEN_DOCUMENTS)
        },
        "eval_docs": sorted({p.doc_id for p in items if p.probe == UNSEEN_DOCUMENTS}),
    }


def _intact(ws: Workspace, version: str) -> bool:
    try:
        read_eval_items(ws, version)
        return True
    except DamagedFile as exc:
        log.warning("%s: rewriting it", exc)
        return False


def eval_state(version: str, train_docs: list[str]) -> dict[str, Any]:
    return {"version": version, "train_docs": sorted(set(train_docs))}


def write_state(ws: Workspace, version: str, train_docs: list[str]) -> None:
    """Make ``version`` the frozen split of later refreshes; called once its dataset is out."""
    write_json(ws.root / STATE, eval_state(version, train_docs))
