"""Prefect's SDK telemetry notice appears on a terminal the first time Prefect is imported;
faqforge's environment switches the telemetry (and so the notice) off."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import pytest

IMPORT = "import prefect"
PREPARED = "from faqforge.runtime import prepare_environment; prepare_environment(); import prefect"


def on_a_terminal(code: str, home) -> str:
    """stderr of ``python -c code`` on a pseudo-terminal, as a user's shell would run it."""
    env = {k: v for k, v in os.environ.items() if k not in ("DO_NOT_TRACK", "CI")}
    env |= {"PREFECT_HOME": str(home), "HOME": str(home)}
    env = {k: v for k, v in env.items() if not k.endswith("_CI") and k != "GITHUB_ACTIONS"}
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=follower, stdout=follower,
                            stderr=follower, env=env, close_fds=True)  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def test_the_notice_is_silenced(tmp_path):
    shown = on_a_terminal(IMPORT, tmp_path / "plain")
    if "telemetry" not in shown.lower():
        pytest.skip("this Prefect shows no notice here (a CI environment is detected)")
    assert "telemetry" not in on_a_terminal(PREPARED, tmp_path / "prepared").lower()
