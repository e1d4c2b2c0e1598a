"""Prefect artifacts that read well in the UI and never mix workspaces.

An artifact key is global on a Prefect server, and its page shows the newest artifact of that
key: two workspaces writing ``dataset-version`` would show each other's. Keys therefore end
with the workspace: ``dataset-version-faqforge-3f2a9c``. Markdown tables in the UI get about
1,000 px; ``cell`` keeps one table cell short and on one line (a ``\\r`` or ``|`` in a model's
answer would otherwise break the row), with the full text in a file the artifact names.
"""

from __future__ import annotations

import hashlib
import re

from faqforge.storage import Workspace


def artifact_key(name: str, ws: Workspace) -> str:
    """``name`` + the workspace folder's name + a hash of its full path (keys allow
    lowercase letters, digits and dashes)."""
    root = ws.root.resolve()
    slug = re.sub(r"[^a-z0-9]+", "-", root.name.lower()).strip("-")[:24] or "ws"
    return f"{name}-{slug}-{hashlib.sha256(str(root).encode()).hexdigest()[:6]}"


def cell(text: object, limit: int = 60) -> str:
    """One markdown table cell: whitespace (``\\r``, newlines, tabs) folded to spaces, pipes
    escaped, at most ``limit`` characters with an ellipsis."""
    flat = " ".join(str(text).split())
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return flat.replace("|", "\\|")
