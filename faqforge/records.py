"""Plain records that cross stage boundaries.

Every stage reads and writes these as JSONL, one record per line. They are frozen
dataclasses so a stage cannot mutate what an upstream stage produced; use
``dataclasses.replace`` to derive a changed copy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Self


class Record:
    """Mixin: dict round-trip that ignores unknown keys (newer writers, older readers)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class Document(Record):
    """One source file, normalised to plain text.

    ``doc_id`` is derived from ``source`` (the path relative to the corpus root), so a
    document keeps its id when its content changes; ``content_hash`` changes instead.
    """

    doc_id: str
    source: str
    format: str
    title: str
    text: str
    content_hash: str


@dataclass(frozen=True)
class Chunk(Record):
    """A token-bounded window of a document, with the headings it sits under.

    ``chunk_id`` hashes the document id and the chunk text, so an unchanged chunk keeps
    its id (and its cached teacher answer) when other parts of the document change.
    """

    chunk_id: str
    doc_id: str
    source: str
    index: int
    heading_path: list[str]
    text: str
    n_tokens: int
    text_hash: str


@dataclass(frozen=True)
class QAPair(Record):
    """A question/answer pair with its lineage back to the source chunk."""

    id: str
    question: str
    answer: str
    doc_id: str
    chunk_id: str
    source: str
    prompt_version: str
    teacher: str
    heading_path: list[str] = field(default_factory=list)
    score: float | None = None
    # Set by curate when a pair is kept but marked for review, e.g. ["pii:email"].
    flags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Rejection(Record):
    """Why a record left the pipeline. ``record`` keeps enough of it to inspect."""

    record_id: str
    stage: str
    reason: str
    detail: str = ""
    record: dict[str, Any] = field(default_factory=dict)
