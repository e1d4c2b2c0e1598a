"""What training data must not overlap: eval items of every eval version, and benchmarks.

A ``Reference`` is one text to keep out of training with a name a rejection can point at:
``eval_id`` (a pair id, or ``file:line`` / the row's ``id`` for a benchmark) and ``origin``
(``eval:<eval-version>`` or ``benchmark:<path>``); a knowledge-probe item is ``question_only``.
A benchmark file is JSONL with a
``question`` and an optional ``answer`` per line; a bad line is an error naming file:line,
since a silently shorter reference set would let leaks through.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from faqforge.config import DecontaminateConfig
from faqforge.records import KNOWLEDGE, EvalItem, QAPair
from faqforge.storage import Workspace, file_hash
from tasks.split_registry import eval_versions, read_eval_items


@dataclass(frozen=True)
class Reference:
    """``question_only``: a knowledge-probe item, whose fact is meant to be trained on; only
    its wording is kept out of training (the same or a near-identical question)."""

    eval_id: str
    origin: str
    question: str
    answer: str
    question_only: bool = False


class ReferenceSet(BaseModel):
    """The content key of the references: registered eval versions and benchmark file hashes."""

    eval_versions: list[str] = []
    benchmarks: dict[str, str] = {}


def reference_set(ws: Workspace, cfg: DecontaminateConfig) -> ReferenceSet:
    """Every eval version on disk and each configured benchmark (resolved, hashed)."""
    benchmarks = {}
    for path in cfg.benchmarks:
        resolved = path.expanduser().resolve()
        if not resolved.is_file():
            raise FileNotFoundError(f"decontaminate.benchmarks: {path} is not a file")
        benchmarks[str(resolved)] = file_hash(resolved)
    return ReferenceSet(eval_versions=eval_versions(ws), benchmarks=benchmarks)


def from_pairs(pairs: Sequence[QAPair], origin: str) -> list[Reference]:
    """References for eval items; knowledge-probe items are question-only."""
    return [
        Reference(
            p.id, origin, p.question, p.answer, isinstance(p, EvalItem) and p.probe == KNOWLEDGE
        )
        for p in pairs
    ]


def read_references(path: Path, kind: str = "benchmark") -> list[Reference]:
    """One reference per line: ``{"question": ..., "answer"?: ..., "id"?: ..., "probe"?: ...}``."""
    refs = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("question"), str):
                raise ValueError(f"{path}:{lineno}: expected an object with a string 'question'")
            answer = str(row.get("answer") or "")
            eval_id = str(row["id"]) if row.get("id") is not None else f"{path.name}:{lineno}"
            # A knowledge-probe row (from a published eval.jsonl) holds out its wording only.
            worded = row.get("probe") == KNOWLEDGE
            refs.append(Reference(eval_id, f"{kind}:{path}", row["question"], answer, worded))
    return refs


def load_references(ws: Workspace, refs: ReferenceSet) -> list[Reference]:
    """Eval items of every registered version (first version naming an item wins), benchmarks."""
    out: list[Reference] = []
    seen: set[str] = set()
    for version in refs.eval_versions:
        items = [p for p in read_eval_items(ws, version) if p.id not in seen]
        seen.update(p.id for p in items)
        out += from_pairs(items, f"eval:{version}")
    for path in refs.benchmarks:
        out += read_references(Path(path))
    return out
