"""One refresh per workspace: a second one fails fast naming the holder, or waits up to
``lock_timeout_s``; a SIGKILLed holder leaves no stale lock; the workspace stays consistent."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from faqforge.locking import WorkspaceLocked, workspace_lock
from testsupport.refresh_proc import ROOT, check_published, start_refresh, tiny_corpus

HOLD = """
import sys, time
from pathlib import Path
from faqforge.locking import workspace_lock
with workspace_lock(Path(sys.argv[1]), "refresh"):
    print("held", flush=True)
    time.sleep(300)
"""


def hold_in_child(ws) -> subprocess.Popen[str]:
    """A separate process holding the refresh lock until it is killed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(ws)], cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, env=env)  # fmt: skip
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_second_holder_fails_at_once_naming_the_first(tmp_path):
    with workspace_lock(tmp_path, "refresh"):
        me = f"pid {os.getpid()} on {socket.gethostname()}"
        expected = rf"held by refresh run outside Prefect, {me}, since 20"
        with pytest.raises(WorkspaceLocked, match=expected), workspace_lock(tmp_path, "refresh"):
            pass
        with workspace_lock(tmp_path, "evaluate"):  # another purpose is another lock
            pass
    with workspace_lock(tmp_path, "refresh"):  # released on exit
        pass


def test_waiter_takes_the_lock_when_the_holder_lets_go(tmp_path):
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with workspace_lock(tmp_path, "refresh"):
            held.set()
            release.wait()

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait()
    start = time.monotonic()
    with (
        pytest.raises(WorkspaceLocked, match=r"after waiting 0\.3 s"),
        workspace_lock(tmp_path, "refresh", timeout_s=0.3),
    ):
        pass
    assert time.monotonic() - start >= 0.3
    threading.Timer(0.5, release.set).start()
    with workspace_lock(tmp_path, "refresh", timeout_s=30):
        assert time.monotonic() - start >= 0.8
    thread.join()


def test_a_sigkilled_holder_leaves_no_stale_lock(tmp_path):
    child = hold_in_child(tmp_path)
    try:
        with (
            pytest.raises(WorkspaceLocked, match=f"pid {child.pid} "),
            workspace_lock(tmp_path, "refresh"),
        ):
            pass
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    with workspace_lock(tmp_path, "refresh"):  # the kernel dropped it with the process
        pass


@pytest.mark.slow
def test_two_refreshes_at_once_one_completes_the_other_names_it(prefect_api, tmp_path):
    corpus, ws = tiny_corpus(tmp_path / "corpus"), tmp_path / "ws"
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [start_refresh(corpus, ws, prefect_api.url, log=log) for log in logs]
    codes = [p.wait(timeout=240) for p in procs]
    assert sorted(codes) == [0, 1], [log.read_text()[-3000:] for log in logs]
    winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
    message = logs[loser].read_text()
    assert re.search(
        rf"refresh failed: WorkspaceLocked: workspace {ws} is busy: held by refresh run "
        rf"'refresh-[\w-]+' \(id [0-9a-f-]{{36}}\), pid {procs[winner].pid} on "
        rf"{socket.gethostname()}, since 20",
        message,
    ), message[-3000:]
    # The winner's version is LATEST and complete; nothing half-written is left behind.
    version = re.search(r"dataset (ds-\w+):", logs[winner].read_text()).group(1)
    assert check_published(ws) == version
    assert [p.name for p in (ws / "datasets").iterdir() if p.is_dir()] == [version]
    assert not any((ws / "tmp").iterdir())


@pytest.mark.slow
def test_with_lock_timeout_a_refresh_waits_for_the_holder(prefect_api, tmp_path):
    corpus, ws, log = tiny_corpus(tmp_path / "corpus"), tmp_path / "ws", tmp_path / "r.log"
    child = hold_in_child(ws)
    try:
        proc = start_refresh(corpus, ws, prefect_api.url, ["lock_timeout_s=120"], log)
        deadline = time.monotonic() + 120
        while "Beginning flow run" not in log.read_text():  # it reached the lock and waits
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        time.sleep(1.0)
        assert proc.poll() is None and check_published(ws) is None
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert proc.wait(timeout=240) == 0, log.read_text()[-3000:]
    assert check_published(ws) is not None


@pytest.mark.slow
def test_an_evaluation_waits_its_turn_for_the_champion(prefect_api, tmp_path):
    """Evaluations read runs/CHAMPION first and may replace it last: a second one is refused
    before it reads anything (here before it even looks for a run to score)."""
    from testsupport.refresh_proc import FAQFORGE, refresh_env

    with workspace_lock(tmp_path, "evaluate"):
        out = subprocess.run([*FAQFORGE, "run", "evaluate", "--workspace", str(tmp_path)],
                             cwd=ROOT, env=refresh_env(prefect_api.url), capture_output=True,
                             text=True, timeout=240)  # fmt: skip
    assert out.returncode == 1
    assert f"WorkspaceLocked: workspace {tmp_path} is busy: held by evaluate run" in out.stderr
