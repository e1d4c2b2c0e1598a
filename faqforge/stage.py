"""What a stage hands to the next: a folder of JSONL files, their counts and a content key.

Tasks pass these small records, not the data, so Prefect's stored results stay tiny and a
re-run can tell from the key alone whether a stage's output already exists. A stage folder
is written whole (staging folder + rename) and marked ``_SUCCESS``; only then is it used, and
only while every file still has the hash the marker records: a damaged folder is rebuilt.
"""

from __future__ import annotations

import inspect
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from faqforge.config import stable_hash
from faqforge.integrity import DamagedFile
from faqforge.records import Record, Rejection
from faqforge.storage import R, Workspace, file_hash, publish_dir, read_records, write_jsonl

log = logging.getLogger("faqforge.stage")
M = TypeVar("M", bound=BaseModel)


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

    def stats_as(self, model: type[M]) -> M:
        """The stats read through the model their stage writes them with: one definition of
        each hand-off (``SplitStats``, ``GenerateStats``), checked by mypy at both ends."""
        return model.model_validate(self.stats)

    def read(self, name: str, cls: type[R]) -> list[R]:
        """The records of ``name``, after checking the file is the one this output wrote."""
        path = self.path(name)
        if (problem := _file_problem(path, self.hashes[name])) is not None:
            raise DamagedFile(path, f"{problem} since stage {self.stage} wrote it",
                              f"delete {self.dir} and re-run; it is rebuilt")  # fmt: skip
        return read_records(path, cls)

    def damage(self) -> str | None:
        """Why this folder can no longer be used (a file missing or changed), or None."""
        for name in self.files:
            if (problem := _file_problem(self.path(name), self.hashes[name])) is not None:
                return f"{self.files[name]}: {problem}"
        return None


def _file_problem(path: Path, expected: str) -> str | None:
    if not path.is_file():
        return "missing"
    actual = file_hash(path)
    return None if actual == expected else f"sha256 {actual} differs from recorded {expected}"


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
    """The stage's output for this key if a previous run completed it intact, else None.

    A folder without its marker, with a marker that does not parse, or with a file whose
    hash differs from the marker's is a miss: it is logged and rebuilt (``save_output``
    replaces it).
    """
    folder = ws.stage_dir(stage, key)
    marker = folder / Workspace.SUCCESS
    if not marker.is_file():
        if folder.exists():
            log.warning("stage %s: %s has no %s (an interrupted or damaged write): rebuilding",
                        stage, folder, Workspace.SUCCESS)  # fmt: skip
        return None
    try:
        out = StageOutput.model_validate_json(marker.read_bytes())
    except (ValidationError, ValueError) as exc:
        log.warning("stage %s: %s does not parse (%s): rebuilding", stage, marker,
                    str(exc).splitlines()[0])  # fmt: skip
        return None
    if (problem := out.damage()) is not None:
        log.warning("stage %s: %s: %s: rebuilding", stage, folder, problem)
        return None
    return out


def save_output(
    ws: Workspace,
    stage: str,
    key: str,
    outputs: Mapping[str, Sequence[Record | dict[str, Any]]],
    counts: StageCounts,
    stats: dict[str, Any] | None = None,
    extra: Callable[[Path, Path], dict[str, str]] | None = None,
) -> StageOutput:
    """Write every output file, then move the folder into place and mark it finished.

    ``extra(staging, final)`` writes files that are not records (validate's report.json and
    Data Docs) into the staging folder and returns ``{name: file}`` of those to hash.
    """
    final = ws.stage_dir(stage, key)
    staging = ws.staging(f"{stage}-{key}")
    files = {name: f"{name}.jsonl" for name in outputs}
    for name, rows in outputs.items():
        write_jsonl(staging / files[name], rows)
    if extra is not None:
        files |= extra(staging, final)
    out = StageOutput(
        stage=stage,
        key=key,
        dir=str(final),
        files=files,
        hashes={name: file_hash(staging / f) for name, f in files.items()},
        counts=counts,
        stats=stats or {},
    )
    (staging / Workspace.SUCCESS).write_text(out.model_dump_json(indent=2))
    # Only reached when ``finished_output`` found no intact folder: one that exists is damaged.
    publish_dir(staging, final, replace=True)
    return out
