"""One writer per workspace and purpose: a kernel lock on ``<workspace>/.locks/<purpose>``.

Two refreshes on one workspace would race on the same stage folders, ``datasets/LATEST`` and
the eval registry's state; two evaluations would both compare against the same champion and
the slower one would overwrite the other's promotion. ``fcntl.flock`` serialises them. The
kernel drops the lock when its holder dies (even by SIGKILL), so a stale lock file never
blocks anyone and needs no cleanup. The holder writes who it is into the file, so the run
that has to wait or give up can name it (pid, host, flow run, since when).

Not covered: workspaces on network filesystems where ``flock`` is not shared between hosts
(NFS without lock support); one lock per purpose, so a refresh and an evaluation still
run side by side, as they touch different files.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

POLL_S = 0.2


class WorkspaceLocked(RuntimeError):
    """Another run holds the workspace's lock for this purpose."""


def lock_path(workspace: Path, purpose: str) -> Path:
    return workspace / ".locks" / purpose


def holder_info(purpose: str) -> dict[str, Any]:
    """Who this process is: pid, host, start time and the Prefect flow run, when in one."""
    info: dict[str, Any] = {
        "purpose": purpose,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    from prefect.context import FlowRunContext  # lazy: `faqforge --help` stays light

    ctx = FlowRunContext.get()
    if ctx is not None and ctx.flow_run is not None:
        info["flow_run"] = {"name": ctx.flow_run.name, "id": str(ctx.flow_run.id)}
    return info


def describe(holder: dict[str, Any]) -> str:
    """``"refresh run 'refresh-…' (id 3f…), pid 4711 on host-a, since 2026-…"``."""
    if not holder:
        return "a run that is just starting (no holder recorded yet)"
    run = holder.get("flow_run")
    who = f"{holder.get('purpose', '?')} run " + (
        f"{run['name']!r} (id {run['id']})" if run else "outside Prefect"
    )
    return f"{who}, pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('since')}"


def _read_holder(fh: BinaryIO) -> dict[str, Any]:
    fh.seek(0)
    try:
        data = json.loads(fh.read().decode("utf-8") or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError):  # caught between truncate and write
        return {}
    return data if isinstance(data, dict) else {}


def _try_lock(fh: BinaryIO) -> bool:
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def workspace_lock(workspace: Path, purpose: str, timeout_s: float = 0.0) -> Iterator[None]:
    """Hold ``purpose``'s lock on ``workspace`` for the ``with`` block.

    Waits up to ``timeout_s`` seconds for a holder to finish (0: not at all), then raises
    ``WorkspaceLocked`` naming it. The lock is per open file, so a nested ``with`` on the
    same purpose in one process fails like a second process would.
    """
    path = lock_path(workspace, purpose)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Open without truncating: the holder's record must survive a waiter opening the file.
    with open(os.open(path, os.O_RDWR | os.O_CREAT, 0o644), "r+b") as fh:
        deadline = time.monotonic() + timeout_s
        while not _try_lock(fh):
            if time.monotonic() >= deadline:
                waited = f" after waiting {timeout_s:g} s" if timeout_s else ""
                raise WorkspaceLocked(
                    f"workspace {workspace} is busy{waited}: held by {describe(_read_holder(fh))}."
                    f" Wait for it to finish, or raise lock_timeout_s to queue behind it"
                    f" (lock file {path})"
                )
            time.sleep(POLL_S)
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps(holder_info(purpose)).encode("utf-8"))
            fh.flush()
            yield
        finally:
            fh.seek(0)
            fh.truncate()  # the next reader should not see a finished run as the holder
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
