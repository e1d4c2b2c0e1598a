"""Files between stages: JSONL records, atomic writes, and the workspace layout.

Every write goes to a temporary sibling, is fsynced and renamed into place, so a reader
(or a re-run after ``kill -9``) sees either the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from faqforge.integrity import REPAIR, DamagedFile, read_json_object, read_pointer_value
from faqforge.records import Record

R = TypeVar("R", bound=Record)


def sha256_bytes(data: bytes, length: int = 16) -> str:
    return hashlib.sha256(data).hexdigest()[:length]


def sha256_text(text: str, length: int = 16) -> str:
    return sha256_bytes(text.encode("utf-8"), length)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)  # read it the only way POSIX offers, then put it back
    os.umask(mask)
    return mask


# mkstemp creates 0600 files: a trainer or server running as another user could not read a
# published train.jsonl. Files get the mode an ordinary open() would give them.
FILE_MODE = 0o666 & ~_umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_jsonl(path: Path, rows: Iterable[Record | dict[str, Any]]) -> int:
    """Write records atomically, one JSON object per line; return how many."""
    lines = [
        json.dumps(r.to_dict() if isinstance(r, Record) else r, ensure_ascii=False, sort_keys=True)
        for r in rows
    ]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a JSONL file; a line that is not UTF-8 JSON is a ``ValueError`` naming
    ``FILE:LINE``."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not UTF-8 (byte {exc.start})") from exc
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not a JSON object: {exc.msg}") from exc


def read_records(path: Path, cls: type[R]) -> list[R]:
    return [cls.from_dict(row) for row in iter_jsonl(path)]


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def publish_dir(staging: Path, final: Path, replace: bool = False) -> None:
    """Move a fully written directory into place in one rename.

    An existing one is kept (content-addressed: same name, same content), unless ``replace``:
    the caller found it damaged, so it is moved aside and removed after the rename.
    """
    for f in staging.rglob("*"):
        if f.is_file():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
    # The folders' entries too: after a power cut a renamed folder must not come back with
    # files missing (a SIGKILL alone loses nothing the kernel already has).
    for d in sorted((p for p in staging.rglob("*") if p.is_dir()), reverse=True):
        _fsync_dir(d)
    _fsync_dir(staging)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() and not replace:
        shutil.rmtree(staging)
        return
    aside = final.with_name(f".{final.name}.damaged-{os.getpid()}")
    if final.exists():
        os.rename(final, aside)
    os.rename(staging, final)
    _fsync_dir(final.parent)
    if aside.exists():
        shutil.rmtree(aside)


@dataclass(frozen=True)
class Workspace:
    """Where a pipeline keeps everything it writes, and the one place its layout is spelled.

    ``stages/<stage>/<key>/``: intermediate outputs keyed by their inputs' content, each
    marked ``_SUCCESS`` once whole; ``cache/{teacher,judge,vectors,eval,tokenized}/``: work
    kept by content across runs; ``datasets/<version>/``: published datasets and
    ``datasets/LATEST``; ``runs/<run-id>/``: adapters and eval reports, ``runs/LATEST`` and
    ``runs/CHAMPION``; ``models/``: locally built base models; ``prefect/``: task results.
    """

    # Pointer files, relative to the root (a remote mirrors them under the same names).
    DATASETS_LATEST: ClassVar[str] = "datasets/LATEST"
    RUNS_LATEST: ClassVar[str] = "runs/LATEST"
    RUNS_CHAMPION: ClassVar[str] = "runs/CHAMPION"
    # Written last into a folder that is complete (a stage output, an adapter, a token cache).
    SUCCESS: ClassVar[str] = "_SUCCESS"

    root: Path

    def stage_dir(self, stage: str, key: str) -> Path:
        return self.root / "stages" / stage / key

    def kept_chunks(self, chunk_ids: set[str]) -> dict[str, dict[str, Any]]:
        """Chunk id → its chunk record, from every chunk stage output the workspace keeps
        (the first found): what lineage and evaluation look a pair's source up in."""
        found: dict[str, dict[str, Any]] = {}
        for path in sorted((self.root / "stages" / "chunk").glob("*/chunks.jsonl")):
            for row in iter_jsonl(path):
                if row["chunk_id"] in chunk_ids:
                    found.setdefault(row["chunk_id"], row)
        return found

    def resolve_dataset(self, version: str | None) -> str | None:
        """``version``, else the one ``datasets/LATEST`` names; None when there is none."""
        return version or self.read_pointer(self.DATASETS_LATEST)

    def resolve_run(self, run_id: str | None) -> str | None:
        """``run_id``, else the one ``runs/LATEST`` names; None when there is none."""
        return run_id or self.read_pointer(self.RUNS_LATEST)

    @property
    def teacher_cache(self) -> Path:
        return self.root / "cache" / "teacher"

    @property
    def judge_cache(self) -> Path:
        return self.root / "cache" / "judge"

    @property
    def eval_cache(self) -> Path:
        """Model answers and grader verdicts (``tasks/evaluate/cache.py``)."""
        return self.root / "cache" / "eval"

    @property
    def tokenized_cache(self) -> Path:
        """Training rows as token ids (``tasks/training/data.py``)."""
        return self.root / "cache" / "tokenized"

    @property
    def vector_cache(self) -> Path:
        """Embeddings and MinHash signatures by text hash (``tasks/vector_cache.py``)."""
        return self.root / "cache" / "vectors"

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def prefect_results(self) -> Path:
        return self.root / "prefect" / "results"

    def staging(self, name: str) -> Path:
        path = self.root / "tmp" / name
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def read_pointer(self, name: str) -> str | None:
        """``datasets/LATEST`` or ``runs/LATEST``-style pointer files; None when absent.

        One that holds anything but an id raises ``DamagedFile`` with the repair command.
        """
        path = self.root / name
        return read_pointer_value(path, self.pointer_fix(name)) if path.is_file() else None

    def pointer_fix(self, name: str) -> str:
        if name.startswith("datasets/") or name.startswith("eval/"):
            return REPAIR.format(root=self.root)
        folder = self.root / name.split("/")[0]
        return f"write the id of a folder in {folder} into {self.root / name}, or delete it"

    def write_pointer(self, name: str, value: str) -> None:
        atomic_write_text(self.root / name, value + "\n")

    def relative(self, path: str | Path) -> str:
        """A path under the workspace as ``datasets/ds-…`` (portable: a copied or mirrored
        workspace reads it too); anything else (a hub name, a path outside) unchanged."""
        absolute = Path(path)
        if absolute.is_absolute() and absolute.is_relative_to(self.root):
            return absolute.relative_to(self.root).as_posix()
        return str(path)

    def resolve(self, path: str) -> str:
        """The inverse of ``relative``: a relative path that exists under the workspace
        becomes absolute; absolute paths (older manifests) and hub names stay."""
        return (
            str(self.root / path)
            if not Path(path).is_absolute() and (self.root / path).exists()
            else path
        )


def workspace_relative(ws: Workspace, obj: Any) -> Any:
    """``obj`` with every string that is a path inside the workspace made relative to it
    (``.`` for the workspace itself): published manifests name no machine's folders."""
    if isinstance(obj, dict):
        return {k: workspace_relative(ws, v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [workspace_relative(ws, v) for v in obj]
    if isinstance(obj, str) and obj.startswith(str(ws.root)):
        return "." if obj == str(ws.root) else ws.relative(obj)
    return obj


class RunManifest(BaseModel):
    """``runs/<run-id>/manifest.json``: what finetune hands to evaluate, the remote and
    lineage, written and read only through ``write_run_manifest``/``read_run_manifest``.

    Its workspace paths are written relative (a copied or mirrored workspace reads them)
    and read back absolute. Fields a later version adds are ignored by an older reader.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    run_id: str
    dataset_version: str
    dataset_content_hash: str | None = None
    dataset_dir: str
    base_model: str
    config: dict[str, Any]  # the run's FinetuneConfig, as trained
    env_overrides: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    adapter_dir: str
    merged_dir: str | None = None


RUN_PATHS = ("dataset_dir", "adapter_dir", "merged_dir", "base_model")


def write_run_manifest(ws: Workspace, run_dir: Path, manifest: RunManifest) -> None:
    data = manifest.model_dump(mode="json")
    write_json(
        run_dir / "manifest.json",
        {k: ws.relative(v) if k in RUN_PATHS and v else v for k, v in data.items()},
    )


def read_run_manifest(ws: Workspace, run_dir: Path, resolve: bool = True) -> RunManifest:
    """The run's manifest, its workspace paths made absolute for this machine (``resolve``;
    without it, as the writer wrote them)."""
    path = run_dir / "manifest.json"
    data = read_json_object(path, required=("run_id",))
    if resolve:
        data = {k: ws.resolve(v) if k in RUN_PATHS and v else v for k, v in data.items()}
    try:
        return RunManifest.model_validate(data)
    except ValidationError as exc:
        problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise DamagedFile(path, f"not a run manifest ({problem})",
                          f"delete {run_dir} and train the run again") from None  # fmt: skip
