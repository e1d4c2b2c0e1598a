"""Content-addressed reply cache: one JSON file per answered chunk, written on arrival.

``cache_dir/<key[:2]>/<key>.json``; the key hashes everything that changes the reply (for
generation: chunk text and heading path, facts asked for, teacher model, prompt version,
reply schema, sampling settings), never where the chunk came from. Writes are atomic, so a
process killed with ``kill -9`` leaves whole entries or none. ``LAST_RUN`` records which
chunks the previous run covered, so a run can say how many chunks (and their pairs) left
the dataset since: those are retired.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from faqforge.config import TeacherConfig, stable_hash
from faqforge.records import Chunk
from faqforge.storage import read_json, write_json
from faqforge.teachers.base import Fact, Teacher, TeacherReply, Usage

log = logging.getLogger(__name__)
LAST_RUN = "last_run.json"


def cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.json"


def generation_key(chunk: Chunk, n_facts: int, teacher: Teacher, cfg: TeacherConfig) -> str:
    """Everything that changes what the teacher writes for this chunk; its source does not."""
    parts = [chunk.text_hash, chunk.heading_path, chunk.section_start, n_facts]
    parts += [teacher.prompt_version, teacher.name]
    return stable_hash([*parts, teacher.schema_version(n_facts), cfg.generation_key()], 32)


def read_entry(path: Path, fields: tuple[str, ...]) -> dict[str, Any] | None:
    """The cached entry, or None when absent or unreadable (then it is asked again)."""
    if not path.is_file():
        return None
    try:
        data = read_json(path)
        missing = [f for f in fields if f not in data]
        if missing:
            raise KeyError(", ".join(missing))
        return data
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("unreadable cache file %s (%s): asking the model again", path, exc)
        return None


def calls_of(data: dict[str, Any]) -> tuple[Usage, ...]:
    return tuple(Usage(**u) for u in data["calls"])


def read_reply(path: Path) -> TeacherReply | None:
    data = read_entry(path, ("facts", "calls", "raw"))
    if data is None:
        return None
    try:
        facts = [
            Fact(str(f["answer"]), tuple(str(q) for q in f["questions"])) for f in data["facts"]
        ]
        return TeacherReply(facts=facts, calls=calls_of(data), raw=data["raw"])
    except (ValueError, TypeError) as exc:
        log.warning("unreadable cache file %s (%s): asking the teacher again", path, exc)
        return None


def write_reply(path: Path, reply: TeacherReply, teacher: Teacher) -> None:
    write_json(
        path,
        {
            "teacher": teacher.name,
            "prompt_version": teacher.prompt_version,
            "facts": [{"answer": f.answer, "questions": list(f.questions)} for f in reply.facts],
            "calls": [asdict(u) for u in reply.calls],
            "raw": reply.raw,
        },
    )


def retire(cache_dir: Path, covered: dict[str, int]) -> tuple[int, int]:
    """Record this run's chunks (id → pairs made); return the previous run's chunks that are
    gone now and their pairs: ``(retired_chunks, retired_pairs)``.

    A chunk's id hashes its document and text, so an edited chunk retires its old version.
    The cache entries stay: a document that comes back costs nothing.
    """
    path = cache_dir / LAST_RUN
    previous = read_entry(path, ("chunks",))
    before: dict[str, int] = previous["chunks"] if previous else {}
    gone = [c for c in before if c not in covered]
    write_json(path, {"chunks": covered})
    return len(gone), sum(before[c] for c in gone)
