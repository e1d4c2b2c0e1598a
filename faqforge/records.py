"""Plain records that cross stage boundaries.

Every stage reads and writes these as JSONL, one record per line. They are frozen
dataclasses so a stage cannot mutate what an upstream stage produced; use
``dataclasses.replace`` to derive a changed copy.
"""

from __future__ import annotations

import hashlib
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
    # The first chunk of its section: the one that introduces the heading's subject.
    section_start: bool = True


@dataclass(frozen=True)
class QAPair(Record):
    """A question/answer pair with its lineage back to the source chunk.

    ``fact_id`` names the fact the pair phrases: one answer from one chunk. The teacher writes
    two or three differently worded questions per fact, and each becomes a pair with the same
    ``fact_id`` (``fact_id_of``), so later stages know which phrasings belong together.
    """

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
    fact_id: str = ""


def fact_id_of(chunk_id: str, answer: str) -> str:
    """A fact is one answer in one chunk: ``fact-`` + hash of the chunk and the answer's words.

    Pairs of one chunk whose answers agree word for word (case and spacing aside) are one fact,
    whichever teacher wrote them and whether or not it grouped them.
    """
    key = chunk_id + "\0" + " ".join(answer.lower().split())
    return "fact-" + hashlib.sha256(key.encode()).hexdigest()[:16]


KNOWLEDGE = "knowledge"
UNSEEN_DOCUMENTS = "unseen_documents"
PROBES = (KNOWLEDGE, UNSEEN_DOCUMENTS)


@dataclass(frozen=True)
class EvalItem(QAPair):
    """An eval question, in the probe that decides what it measures.

    - ``knowledge``: a held-out phrasing of a fact from a training document; ``taught_by``
      names the training pairs (other phrasings of the same fact) that teach it. It measures
      whether the tuned model learned the fact, asked in words it never saw.
    - ``unseen_documents``: a question about a document held out of training entirely. A
      closed-book model cannot know the answer; it measures abstention and answer style.

    Items written before probes existed read as ``unseen_documents`` (they were whole held-out
    documents).
    """

    probe: str = UNSEEN_DOCUMENTS
    taught_by: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Rejection(Record):
    """Why a record left the pipeline. ``record`` keeps enough of it to inspect."""

    record_id: str
    stage: str
    reason: str
    detail: str = ""
    record: dict[str, Any] = field(default_factory=dict)
