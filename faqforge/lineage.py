"""Where a result came from: the code version that produced it."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

import faqforge


@cache
def code_version() -> dict[str, str | bool | None]:
    """Package version plus the git commit (and whether the tree was dirty), if in a checkout."""
    repo = Path(faqforge.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {"faqforge": faqforge.__version__, "git_commit": commit, "git_dirty": dirty}
