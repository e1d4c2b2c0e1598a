"""Storage beyond the laptop: dataset versions, runs and eval reports mirrored to an fsspec URL
(``storage.remote_url``: ``s3://``, ``gs://``, ``az://``, ``file://``, ``memory://``), and
fetched from there by a worker whose workspace lacks them (a GPU worker training on a dataset
a CPU worker published).

The remote mirrors the workspace layout: ``datasets/<version>/``, ``datasets/LATEST``,
``runs/<run-id>/`` (adapter, card, metrics, manifest, samples; not ``trainer/`` checkpoints),
``runs/<run-id>/eval/``, ``runs/LATEST`` and ``runs/CHAMPION``.

Atomic for readers: object stores have no directory rename, so a folder counts only once its
``_COMPLETE`` marker exists. The marker is written last and lists every file with its sha256;
a reader copies the listed files into a local staging folder, checks each hash and renames the
folder into place. A pointer is written after the folder it names. Re-mirroring identical
content uploads nothing; changed content (a re-published manifest) first removes the marker.

Not handled: two writers mirroring different content into one folder at the same moment
(folder names are content-derived, so they write the same bytes), pruning remote versions,
and the eval registry (``eval/``): the next refresh on another worker draws its own split.

Prefect task results go to the same place through a saved block (``result_storage``)::

    python -m faqforge.remote configs/my.yaml   # saves the block, prints how to select it
"""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task

from faqforge.config import FinetuneConfig, StorageConfig
from faqforge.storage import (
    Workspace,
    file_hash,
    publish_dir,
    read_run_manifest,
    write_run_manifest,
)
from faqforge.tasking import IO_RETRIES

COMPLETE = "_COMPLETE"
# Checkpoints only serve --resume on the machine that wrote them; eval/ is mirrored on its own.
RUN_SKIP = ("trainer", "eval")
RESULTS_DIR = "prefect-results"


class RemoteError(RuntimeError):
    """The remote holds something other than what its marker promises."""


class NotOnRemote(FileNotFoundError):
    """Neither the workspace nor the remote has a complete copy of what was asked for."""


@dataclass(frozen=True)
class Remote:
    """An fsspec filesystem and the root path of the mirror on it."""

    fs: Any  # fsspec.AbstractFileSystem (untyped library)
    root: str
    url: str

    @classmethod
    def from_config(cls, cfg: StorageConfig) -> Remote | None:
        if not cfg.remote_url:
            return None
        import fsspec

        fs, root = fsspec.core.url_to_fs(cfg.remote_url, **cfg.storage_options)
        return cls(fs, root.rstrip("/"), cfg.remote_url.rstrip("/"))

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def url_of(self, rel: str) -> str:
        return f"{self.url}/{rel}"

    def read_pointer(self, name: str) -> str | None:
        path = self.path(name)
        return self.fs.cat_file(path).decode().strip() if self.fs.exists(path) else None

    def write_pointer(self, name: str, value: str) -> None:
        self.put_bytes(self.path(name), (value + "\n").encode())

    def put_bytes(self, path: str, data: bytes) -> None:
        """Write under a temporary name, then move: a reader never sees half a small file."""
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, path)

    def marker(self, rel: str) -> dict[str, Any] | None:
        """The folder's ``_COMPLETE`` record, or None while the folder is absent or partial."""
        path = self.path(f"{rel}/{COMPLETE}")
        if not self.fs.exists(path):
            return None
        return json.loads(self.fs.cat_file(path))


def local_files(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Relative path → sha256 of every file under ``folder``, top-level ``skip`` names left out."""
    return {
        p.relative_to(folder).as_posix(): file_hash(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).parts[0] not in (*skip, COMPLETE)
    }


def push_dir(remote: Remote, folder: Path, rel: str, skip: tuple[str, ...] = ()) -> int:
    """Mirror ``folder`` to ``<remote>/<rel>/``, marker last; return how many files were sent."""
    files = local_files(folder, skip)
    marker = remote.marker(rel)
    if marker is not None and marker["files"] == files:
        return 0
    if marker is not None:  # readers must not trust the folder while it changes
        remote.fs.rm(remote.path(f"{rel}/{COMPLETE}"))
    for name in files:
        target = remote.path(f"{rel}/{name}")
        remote.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        remote.fs.put_file(str(folder / name), target)
    remote.put_bytes(remote.path(f"{rel}/{COMPLETE}"), json.dumps({"files": files}).encode())
    return len(files)


def fetch_dir(remote: Remote, rel: str, folder: Path, ws: Workspace) -> bool:
    """Copy a complete remote folder to ``folder`` (whole or not at all); False if not there."""
    marker = remote.marker(rel)
    if marker is None:
        return False
    staging = ws.staging("fetch-" + rel.replace("/", "-"))
    for name, digest in marker["files"].items():
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        remote.fs.get_file(remote.path(f"{rel}/{name}"), str(target))
        if (got := file_hash(target)) != digest:
            raise RemoteError(
                f"{remote.url_of(rel)}/{name}: sha256 {got}, but {COMPLETE} lists {digest}; "
                "the folder is being re-mirrored: retry, or re-run the flow that wrote it"
            )
    publish_dir(staging, folder)
    return True


def push_dataset(remote: Remote, ws: Workspace, version: str) -> int:
    sent = push_dir(remote, ws.datasets / version, f"datasets/{version}")
    remote.write_pointer(Workspace.DATASETS_LATEST, version)  # after the folder it names
    return sent


def pull_dataset(remote: Remote, ws: Workspace, version: str | None) -> str | None:
    """The version to use (given, else local LATEST, else remote LATEST), fetched if only the
    remote has it; None when neither side knows one."""
    version = ws.resolve_dataset(version) or remote.read_pointer(Workspace.DATASETS_LATEST)
    if version and not (ws.datasets / version / "manifest.json").is_file():
        _fetch(remote, f"datasets/{version}", ws.datasets / version, ws)
    return version


def _fetch(remote: Remote, rel: str, folder: Path, ws: Workspace) -> None:
    if not fetch_dir(remote, rel, folder, ws):
        raise NotOnRemote(
            f"{rel}: not in {ws.root} and not complete at {remote.url_of(rel)} "
            f"(no {COMPLETE} marker): was it published with storage.remote_url={remote.url}?"
        )


def push_run(remote: Remote, ws: Workspace, run_id: str) -> int:
    sent = push_dir(remote, ws.runs / run_id, f"runs/{run_id}", skip=RUN_SKIP)
    remote.write_pointer(Workspace.RUNS_LATEST, run_id)
    return sent


def push_report(remote: Remote, ws: Workspace, run_id: str) -> int:
    """The run's ``eval/`` folder; ``runs/CHAMPION`` too when this run holds it."""
    sent = push_dir(remote, ws.runs / run_id / "eval", f"runs/{run_id}/eval")
    if ws.read_pointer(Workspace.RUNS_CHAMPION) == run_id:
        remote.write_pointer(Workspace.RUNS_CHAMPION, run_id)
    return sent


def pull_run(remote: Remote, ws: Workspace, run_id: str | None) -> str | None:
    """Like ``pull_dataset`` for a fine-tuning run, with its dataset version.

    A fetched manifest names the writer's paths: they are pointed at this workspace, and the
    base model is resolved here from the run's config (the built-in tiny Llama is rebuilt, the
    same seed giving the same weights; any other base must exist on this worker).
    """
    run_id = ws.resolve_run(run_id) or remote.read_pointer(Workspace.RUNS_LATEST)
    if run_id is None or (ws.runs / run_id / "manifest.json").is_file():
        return run_id
    run_dir = ws.runs / run_id
    _fetch(remote, f"runs/{run_id}", run_dir, ws)
    from faqforge.models import resolve_base_model

    manifest = read_run_manifest(ws, run_dir, resolve=False)
    version = pull_dataset(remote, ws, manifest.dataset_version)
    merged = run_dir / "merged"
    here = {  # manifests written before paths were workspace-relative name the trainer's
        "dataset_dir": str(ws.datasets / str(version)),
        "adapter_dir": str(run_dir / "adapter"),
        "merged_dir": str(merged) if merged.is_dir() else None,
        "base_model": resolve_base_model(FinetuneConfig.model_validate(manifest.config), ws),
    }
    write_run_manifest(ws, run_dir, manifest.model_copy(update=here))
    return run_id


def result_storage(cfg: StorageConfig) -> Any:
    """A Prefect storage block for task results under ``<remote_url>/prefect-results``.

    Prefect's ``RemoteFileSystem`` refuses ``file://`` (it wants ``LocalFileSystem``).
    """
    from prefect.filesystems import LocalFileSystem, RemoteFileSystem

    if not cfg.remote_url:
        raise ValueError("storage.remote_url is not set: there is no remote to keep results on")
    url = f"{cfg.remote_url.rstrip('/')}/{RESULTS_DIR}"
    if url.startswith("file://"):
        return LocalFileSystem(basepath=url.removeprefix("file://"))
    return RemoteFileSystem(basepath=url, settings=cfg.storage_options)


def task_results(ws: Workspace) -> Any:
    """Where stage tasks persist their Prefect results, passed to each task explicitly (an
    environment default would let the first workspace of a process win): a results block
    the operator chose (``PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK``, or the server's default
    from ``prefect result-storage set``, e.g. the remote's, saved by
    ``python -m faqforge.remote``), else ``<workspace>/prefect/results``, beside the stage
    folders the results point at."""
    from prefect.filesystems import LocalFileSystem
    from prefect.results import get_default_result_storage

    chosen = get_default_result_storage()
    return (
        ws.prefect_results
        if isinstance(chosen, LocalFileSystem)
        and getattr(chosen, "_block_document_id", None) is None
        else chosen
    )


def save_result_storage(cfg: StorageConfig, name: str = "faqforge-results") -> str:
    """Save the results block; return its slug for ``PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK``."""
    block = result_storage(cfg)
    block.save(name, overwrite=True)
    return f"{block.get_block_type_slug()}/{name}"


def absent_is_final(task: Any, task_run: Any, state: Any) -> bool:
    """Retry I/O failures, not a version the remote does not have."""
    return not isinstance(state.result(raise_on_failure=False), NotOnRemote)


@task(name="fetch-dataset", retry_condition_fn=absent_is_final, **IO_RETRIES)
def fetch_dataset(version: str | None, cfg: StorageConfig, workspace: str) -> str | None:
    """The dataset version to train on, fetched from ``storage.remote_url`` if only it has it."""
    remote = Remote.from_config(cfg)
    ws = Workspace(Path(workspace))
    if remote is None:
        return ws.resolve_dataset(version)
    return pull_dataset(remote, ws, version)


@task(name="fetch-run", retry_condition_fn=absent_is_final, **IO_RETRIES)
def fetch_run(run_id: str | None, cfg: StorageConfig, workspace: str) -> str | None:
    """The run to evaluate, fetched (with its dataset) from ``storage.remote_url`` if needed."""
    remote = Remote.from_config(cfg)
    ws = Workspace(Path(workspace))
    if remote is None:
        return ws.resolve_run(run_id)
    return pull_run(remote, ws, run_id)


@task(name="mirror-dataset", **IO_RETRIES)
def mirror_dataset(version: str, cfg: StorageConfig, workspace: str) -> int | None:
    """Copy a published version, then ``datasets/LATEST``, to the remote; files sent."""
    remote = Remote.from_config(cfg)
    return None if remote is None else push_dataset(remote, Workspace(Path(workspace)), version)


@task(name="mirror-run", **IO_RETRIES)
def mirror_run(run_id: str, cfg: StorageConfig, workspace: str) -> int | None:
    """Copy a run folder (not its checkpoints), then ``runs/LATEST``, to the remote."""
    remote = Remote.from_config(cfg)
    return None if remote is None else push_run(remote, Workspace(Path(workspace)), run_id)


@task(name="mirror-report", **IO_RETRIES)
def mirror_report(run_id: str, cfg: StorageConfig, workspace: str) -> int | None:
    """Copy a run's evaluation (report, metrics, predictions) to the remote."""
    remote = Remote.from_config(cfg)
    return None if remote is None else push_report(remote, Workspace(Path(workspace)), run_id)


if __name__ == "__main__":
    from faqforge.config import DEFAULT_CONFIG, load_config
    from faqforge.runtime import prepare_environment

    prepare_environment()
    slug = save_result_storage(
        load_config(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_CONFIG).storage
    )
    print(
        f"saved {slug}. Task results go there with either:\n"
        f"  export PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK={slug}   # this shell's runs\n"
        f"  prefect result-storage set {slug}                     # every run on this server"
    )
