"""Published files get the mode the umask gives an ordinary file, not mkstemp's 0600: a
trainer or server running as another user must be able to read them."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, mode):
    code = (
        f"import os\nos.umask({umask})\n"
        "from pathlib import Path\nfrom faqforge.storage import write_jsonl, write_json\n"
        f"write_jsonl(Path({str(tmp_path / 'train.jsonl')!r}), [{{'id': 'a'}}])\n"
        f"write_json(Path({str(tmp_path / 'manifest.json')!r}), {{}})\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
    for name in ("train.jsonl", "manifest.json"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == mode, name
