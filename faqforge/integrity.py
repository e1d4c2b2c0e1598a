"""Nothing read back from the workspace is trusted without a check.

Two kinds of damage, two answers:

- a *derived* file (a stage folder, a cache entry) that fails its check is a miss: it is
  rebuilt, and the rebuild is logged;
- a *pointer or state* file (``datasets/LATEST``, ``eval/STATE.json``, an eval version) is
  the workspace's memory of what was published; guessing past it would publish against the
  wrong baseline, so the run stops with the file, what it holds and the command that
  repairs it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

REPAIR = "faqforge datasets repair --workspace {root}"
# What a pointer may hold: a version or run id, nothing else.
POINTER_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class DamagedFile(RuntimeError):
    """A workspace file that faqforge wrote is not what it wrote."""

    def __init__(self, path: Path, problem: str, fix: str = "") -> None:
        self.path, self.problem, self.fix = path, problem, fix
        super().__init__(f"{path}: {problem}" + (f"; to repair: {fix}" if fix else ""))


def shown(data: Any, limit: int = 60) -> str:
    """A short, printable rendering of what a damaged file (or field) holds."""
    if not isinstance(data, bytes):
        text = repr(data)
        return text if len(text) <= limit else text[:limit] + " …"
    text = repr(data[:limit])
    return text + (f" … ({len(data)} bytes)" if len(data) > limit else "")


def read_text(path: Path, fix: str = "") -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DamagedFile(path, f"not UTF-8 text (byte {exc.start}): holds {shown(data)}",
                          fix) from exc  # fmt: skip


def read_json_object(path: Path, fix: str = "", required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON object with ``required`` keys, or a ``DamagedFile`` naming the path."""
    text = read_text(path, fix)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DamagedFile(path, f"not JSON ({exc.msg}): holds {shown(text.encode())}",
                          fix) from exc  # fmt: skip
    if not isinstance(obj, dict):
        raise DamagedFile(path, f"not a JSON object: holds {shown(text.encode())}", fix)
    if missing := [k for k in required if k not in obj]:
        raise DamagedFile(path, f"lacks {', '.join(missing)}: holds {shown(text.encode())}", fix)
    return obj


def read_pointer_value(path: Path, fix: str) -> str:
    value = read_text(path, fix).strip()
    if not POINTER_VALUE.match(value):
        raise DamagedFile(path, f"does not hold an id: holds {shown(value.encode())}", fix)
    return value
