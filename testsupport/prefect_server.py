"""A real Prefect API server and process worker, as context managers, for tests and for
``scripts/operator-demo``.

    with prefect_server(tmp / "prefect") as api, prefect_worker(api, "faqforge", cwd=ROOT):
        subprocess.run(["prefect", "deployment", "run", ...], env=api.env())

Each runs as a subprocess in its own process group with its own ``PREFECT_HOME`` (SQLite
database inside) and is stopped by that group id: the server with SIGTERM, the worker with
SIGINT (it ignores SIGTERM), SIGKILL after a grace period. A process worker starts each
flow run in a session of its own, so ``stop_flow_runs`` kills what is still running by the
pid the worker recorded on the run. Output goes to ``server.log`` / ``worker.log`` in the
home, quoted in the error when a start fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PREFECT = [sys.executable, "-m", "prefect"]


@dataclass
class PrefectAPI:
    url: str  # http://127.0.0.1:PORT/api
    home: Path

    @property
    def ui_url(self) -> str:
        return self.url.removesuffix("/api")

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a process that talks to this API (CLI, worker, flow runs)."""
        return {
            **os.environ,
            "PREFECT_API_URL": self.url,
            "PREFECT_UI_URL": self.ui_url,
            "PREFECT_HOME": str(self.home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            **extra,
        }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def stop_group(proc: subprocess.Popen[bytes], sig: int, grace_s: float = 20) -> None:
    """Signal ``proc``'s process group, then SIGKILL it if it outlives ``grace_s``."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.is_file() else "(no log)"


@contextmanager
def prefect_server(
    home: Path, port: int | None = None, ui: bool = False, startup_s: float = 120
) -> Iterator[PrefectAPI]:
    """``prefect server start`` on 127.0.0.1 with its SQLite database under ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    api = PrefectAPI(f"http://127.0.0.1:{port or free_port()}/api", home)
    env = api.env(PREFECT_UI_ENABLED=str(ui).lower())
    env.pop("PREFECT_API_URL")  # the server must not try to reach itself before it is up
    port_ = api.url.rsplit(":", 1)[1].split("/")[0]
    cmd = [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", port_]
    log = home / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + startup_s
        while not healthy(api.url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prefect server did not start in {startup_s} s:\n{_tail(log)}")
            time.sleep(0.3)
        yield api
    finally:
        stop_group(proc, signal.SIGTERM)


@contextmanager
def prefect_worker(
    api: PrefectAPI, pool: str, cwd: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``prefect worker start --pool POOL`` polling every second; flow runs inherit ``env``."""
    log = api.home / f"worker-{pool}.log"
    cmd = [*PREFECT, "worker", "start", "--pool", pool, "--type", "process"]
    worker_env = {**api.env(PREFECT_WORKER_QUERY_SECONDS="1"), **(env or {})}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=worker_env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        time.sleep(0.5)
        if proc.poll() is not None:
            raise RuntimeError(f"prefect worker exited at start:\n{_tail(log)}")
        yield proc
    finally:
        stop_flow_runs(api)
        stop_group(proc, signal.SIGINT)


def stop_flow_runs(api: PrefectAPI) -> list[int]:
    """Kill the process group of every flow run this API still has running; their pids."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState
    from prefect.client.schemas.filters import FlowRunFilterStateType as StateType
    from prefect.client.schemas.objects import StateType as T

    killed = []
    with SyncPrefectClient(api.url) as client:
        state = FlowRunFilterState(type=StateType(any_=[T.RUNNING, T.PENDING, T.CANCELLING]))
        for run in client.read_flow_runs(flow_run_filter=FlowRunFilter(state=state)):
            pid = (run.infrastructure_pid or "").rsplit(":", 1)[-1]
            if pid.isdigit():
                try:
                    os.killpg(int(pid), signal.SIGKILL)
                    killed.append(int(pid))
                except ProcessLookupError:
                    pass
    return killed
