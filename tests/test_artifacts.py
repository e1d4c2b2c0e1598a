"""Artifacts read well in the UI: one-line, bounded cells, embedded plots, and keys that keep
two workspaces on one server apart."""

from __future__ import annotations

import base64

from faqforge.artifacts import artifact_key, cell, embed_image
from faqforge.storage import Workspace


def test_a_cell_is_one_bounded_line():
    assert cell("line one\r\nline two\ttab | pipe") == "line one line two tab \\| pipe"
    long = cell("word " * 100, 40)
    assert len(long) <= 40 and long.endswith("…")


def test_keys_differ_per_workspace_and_are_valid(tmp_path):
    a = artifact_key("dataset-version", Workspace(tmp_path / "team-a" / ".faqforge"))
    b = artifact_key("dataset-version", Workspace(tmp_path / "team-b" / ".faqforge"))
    assert a != b and a.startswith("dataset-version-faqforge-")
    assert all(c.islower() or c.isdigit() or c == "-" for c in a)


def test_relative_png_links_become_data_uris(tmp_path):
    png = b"\x89PNG\r\n\x1a\nfake"
    (tmp_path / "scores.png").write_bytes(png)
    md = "before ![score histogram](scores.png) ![gone](missing.png) after"
    out = embed_image(md, tmp_path)
    assert f"![score histogram](data:image/png;base64,{base64.b64encode(png).decode()})" in out
    assert "![gone](missing.png)" in out  # nothing to embed: the link is left as it was
