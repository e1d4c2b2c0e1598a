"""Real ``faqforge run refresh`` processes for the hardening tests and ``bench/chaos.py``.

A refresh runs as a subprocess in its own process group, so a test can SIGKILL it (and
anything it started) the moment a file appears: a stage's ``_SUCCESS`` marker, a staging
folder, ``datasets/LATEST``. All of them talk to one ``prefect server start`` on 127.0.0.1
(``prefect_server.py``): an ephemeral API per process would cost 10-20 s each.
``check_published`` is the consistency rule every test applies: LATEST names a version
whose manifest exists and whose files hash to what the manifest says.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from faqforge.storage import file_hash, iter_jsonl, read_json  # noqa: E402

FAQFORGE = [sys.executable, "-m", "faqforge.cli"]
# Small and fast: three sample documents, no MiniLM load for semantic dedup.
CORPUS_FILES = ("overview.md", "glossary.txt", "configuration.md")
FAST = ["dedup.semantic=false"]


def tiny_corpus(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in CORPUS_FILES:
        shutil.copy(ROOT / "faqforge" / "sample_corpus" / name, dest / name)
    return dest


def refresh_env(api_url: str) -> dict[str, str]:
    return {**os.environ, "PREFECT_API_URL": api_url, "PYTHONPATH": str(ROOT),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1"}  # fmt: skip


def start_refresh(
    corpus: Path, ws: Path, api_url: str, sets: list[str] = (), log: Path | None = None
) -> subprocess.Popen[bytes]:
    """``faqforge run refresh`` in a new process group; output to ``log`` (or discarded)."""
    cmd = [*FAQFORGE, "run", "refresh", "--source", str(corpus), "--workspace", str(ws)]
    for s in [*FAST, *sets]:
        cmd += ["--set", s]
    out = log.open("ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen(cmd, cwd=ROOT, env=refresh_env(api_url), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    finally:
        if log:
            out.close()  # type: ignore[union-attr]


def kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout_s: float) -> bool:
    """SIGKILL ``proc``'s process group as soon as ``ready()``; False if it ended first."""
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None:
        if ready():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise TimeoutError(f"refresh neither ended nor reached the kill point in {timeout_s} s")
        time.sleep(0.005)
    return False


def marker(ws: Path, stage: str) -> Callable[[], bool]:
    """True once a folder of ``stage`` is finished (``stages/<stage>/<key>/_SUCCESS``)."""
    return lambda: any((ws / "stages" / stage).glob("*/_SUCCESS"))


class Partial(AssertionError):
    """LATEST named a version that is not complete."""


def check_published(ws: Path, version: str | None = None) -> str | None:
    """The version LATEST names, verified complete (manifest present, every file's hash as in
    the manifest); None when nothing is published. Raises ``Partial`` otherwise."""
    latest = ws / "datasets" / "LATEST"
    version = version or (latest.read_text().strip() if latest.is_file() else None)
    if version is None:
        return None
    folder = ws / "datasets" / version
    if not (folder / "manifest.json").is_file():
        raise Partial(f"LATEST names {version} but {folder}/manifest.json is missing")
    for name, meta in read_json(folder / "manifest.json")["files"].items():
        path = folder / name
        if not path.is_file() or file_hash(path) != meta["sha256"]:
            raise Partial(f"{path} is missing or does not hash to its manifest entry")
    return version


def dataset(ws: Path) -> dict[str, Any]:
    """The published version and its records, for comparing two workspaces."""
    version = check_published(ws)
    assert version is not None, f"nothing published in {ws}"
    folder = ws / "datasets" / version
    rows = {n: list(iter_jsonl(folder / f"{n}.jsonl")) for n in ("train", "eval", "rejections")}
    return {"version": version, **rows}


class LatestWatcher(threading.Thread):
    """Polls ``datasets/LATEST`` while runs are killed; every value seen must be complete."""

    def __init__(self, ws: Path, every_s: float = 0.01):
        super().__init__(daemon=True)
        self.ws, self.every_s = ws, every_s
        self.seen: set[str] = set()
        self.problems: list[str] = []
        self.reads = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                version = check_published(self.ws)
            except Partial as exc:
                self.problems.append(str(exc))
            else:
                if version:
                    self.seen.add(version)
            self.reads += 1
            time.sleep(self.every_s)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_event.set()
        self.join(timeout=5)
