"""What a stage hands to the next: a folder of JSONL files, their counts and a content key.

Tasks pass these small records, not the data, so Prefect's stored results stay tiny and a
re-run can tell from the key alone whether a stage's output already exists. A stage folder
is written whole (staging folder + rename) and marked ``_SUCCESS``; only then is it used.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from faqforge.config import stable_hash
from faqforge.records import Record, Rejection
from faqforge.storage import R, Workspace, file_hash, publish_dir, read_records, write_jsonl

SUCCESS = "_SUCCESS"


class StageCounts(BaseModel):
    """Records in, out and rejected by reason: ``in == out + sum(rejected)`` always.

    ``produced`` is set where a stage emits another unit than it reads (chunks from
    documents, pairs from chunks): ``out`` counts inputs that yielded output.
    """

    model_config = ConfigDict(populate_by_name=True)

    in_: int = Field(alias="in")
    out: int
    rejected: dict[str, int] = {}
    produced: int | None = None

    @classmethod
    def of(
        cls, n_in: int, n_out: int, rejections: Iterable[Rejection], produced: int | None = None
    ) -> StageCounts:
        counts = cls(
            **{"in": n_in},
            out=n_out,
            rejected=dict(Counter(r.reason for r in rejections)),
            produced=produced,
        )
        if counts.in_ != counts.out + sum(counts.rejected.values()):
            raise ValueError(f"counts do not add up: {counts.as_dict()}")
        return counts

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


class StageOutput(BaseModel):
    """A finished stage folder: ``files`` maps a logical name to a JSONL file in ``dir``."""

    stage: str
    key: str
    dir: str
    files: dict[str, str]
    hashes: dict[str, str]
    counts: StageCounts
    stats: dict[str, Any] = {}

    def path(self, name: str) -> Path:
        return Path(self.dir) / self.files[name]

    def read(self, name: str, cls: type[R]) -> list[R]:
        return read_records(self.path(name), cls)


def module_hash(module: ModuleType) -> str:
    """Hash of a stage module's source, so editing a stage invalidates its cached outputs."""
    return stable_hash(inspect.getsource(module))


def stage_key(stage: str, *parts: Any) -> str:
    return stable_hash([stage, *[_keyable(p) for p in parts]])


def _keyable(part: Any) -> Any:
    if isinstance(part, StageOutput):
        return [part.stage, part.hashes]
    if isinstance(part, BaseModel):
        return part.model_dump(mode="json")
    return part


def finished_output(ws: Workspace, stage: str, key: str) -> StageOutput | None:
    """The stage's output for this key if a previous run completed it, else None."""
    folder = ws.stage_dir(stage, key)
    marker = folder / SUCCESS
    if not marker.is_file():
        return None
    return StageOutput.model_validate_json(marker.read_text())


def save_output(
    ws: Workspace,
    stage: str,
    key: str,
    outputs: Mapping[str, Sequence[Record | dict[str, Any]]],
    counts: StageCounts,
    stats: dict[str, Any] | None = None,
) -> StageOutput:
    """Write every output file, then move the folder into place and mark it finished."""
    final = ws.stage_dir(stage, key)
    staging = ws.staging(f"{stage}-{key}")
    files = {name: f"{name}.jsonl" for name in outputs}
    for name, rows in outputs.items():
        write_jsonl(staging / files[name], rows)
    out = StageOutput(
        stage=stage,
        key=key,
        dir=str(final),
        files=files,
        hashes={name: file_hash(staging / f) for name, f in files.items()},
        counts=counts,
        stats=stats or {},
    )
    (staging / SUCCESS).write_text(out.model_dump_json(indent=2))
    publish_dir(staging, final)
    return out
