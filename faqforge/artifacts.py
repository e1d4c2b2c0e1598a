"""Prefect artifacts that read well in the UI and never mix workspaces.

An artifact key is global on a Prefect server, and its page shows the newest artifact of that
key: two workspaces writing ``dataset-version`` would show each other's. Keys therefore end
with the workspace: ``dataset-version-faqforge-3f2a9c``. Markdown tables in the UI get about
1,000 px; ``cell`` keeps one table cell short and on one line (a ``\\r`` or ``|`` in a model's
answer would otherwise break the row), with the full text in a file the artifact names.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from faqforge.storage import Workspace


def stage_workspace(stage_dir: str | Path) -> Workspace:
    """The workspace of a stage folder (``<workspace>/stages/<stage>/<key>``)."""
    return Workspace(Path(stage_dir).parents[2])


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


_RELATIVE_PNG = re.compile(r"!\[([^\]]*)\]\(([\w.-]+\.png)\)")


def embed_image(markdown: str, folder: Path) -> str:
    """Relative PNG links (``![histogram](scores.png)``) as data URIs: a report beside its
    plot reads fine on disk, but the UI has no folder to resolve the link in."""

    def inline(match: re.Match[str]) -> str:
        path = folder / match.group(2)
        if not path.is_file():
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f"![{match.group(1)}](data:image/png;base64,{data})"

    return _RELATIVE_PNG.sub(inline, markdown)
