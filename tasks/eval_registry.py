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

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from faqforge.config import stable_hash
from faqforge.records import KNOWLEDGE, UNSEEN_DOCUMENTS, EvalItem
from faqforge.storage import (
    Workspace,
    publish_dir,
    read_json,
    read_records,
    write_json,
    write_jsonl,
)

STATE = "eval/STATE.json"


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
    """
    path = ws.root / STATE
    if new_eval or not path.is_file():
        return None
    state = read_json(path)
    return {"version": state["version"], "train_docs": sorted(state["train_docs"])}


def load_frozen(ws: Workspace, state: dict[str, Any] | None) -> FrozenEval | None:
    """The items behind a ``frozen_state``; a missing version folder is an error, not a reset."""
    if state is None:
        return None
    items_path = eval_root(ws) / state["version"] / "eval.jsonl"
    if not items_path.is_file():
        raise FileNotFoundError(
            f"{ws.root / STATE} names eval version {state['version']} but {items_path} is "
            "missing: restore it, or start a new eval split with --new-eval"
        )
    items = read_records(items_path, EvalItem)
    return FrozenEval(state["version"], items, frozenset(state["train_docs"]))


def eval_versions(ws: Workspace) -> list[str]:
    """Every complete eval version folder (meta.json is written last), oldest first."""
    root = eval_root(ws)
    if not root.is_dir():
        return []
    done = [d for d in root.iterdir() if (d / "meta.json").is_file()]
    return [d.name for d in sorted(done, key=lambda d: (read_json(d / "meta.json")["created_at"],
                                                       d.name))]  # fmt: skip


def read_eval_items(ws: Workspace, version: str) -> list[EvalItem]:
    return read_records(eval_root(ws) / version / "eval.jsonl", EvalItem)


def save_eval_version(ws: Workspace, items: list[EvalItem], meta: dict[str, Any]) -> str:
    """Write an eval version folder whole (kept if it exists: equal id, equal items)."""
    version = eval_version_id(items)
    final = eval_root(ws) / version
    if not final.is_dir():
        staging = ws.staging(f"eval-{version}")
        write_jsonl(staging / "eval.jsonl", items)
        write_json(
            staging / "meta.json",
            {
                "version": version,
                "created_at": datetime.now(UTC).isoformat(timespec="microseconds"),
                "items": len(items),
                "probes": {
                    probe: sum(p.probe == probe for p in items)
                    for probe in (KNOWLEDGE, UNSEEN_DOCUMENTS)
                },
                "eval_docs": sorted({p.doc_id for p in items if p.probe == UNSEEN_DOCUMENTS}),
                **meta,
            },
        )
        publish_dir(staging, final)
    return version


def write_state(ws: Workspace, version: str, train_docs: list[str]) -> None:
    """Make ``version`` the frozen split of later refreshes; called once its dataset is out."""
    write_json(ws.root / STATE, {"version": version, "train_docs": sorted(set(train_docs))})
