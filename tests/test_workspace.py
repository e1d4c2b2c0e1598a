"""Workspace lookups that more than one stage relies on."""

from __future__ import annotations

from faqforge.storage import Workspace, write_jsonl


def test_kept_chunks_finds_chunks_across_chunk_stage_outputs(tmp_path):
    ws = Workspace(tmp_path)
    row = {"index": 0, "heading_path": [], "n_tokens": 3}
    first = [{**row, "chunk_id": "c1", "text": "one"}, {**row, "chunk_id": "c2", "text": "two"}]
    write_jsonl(ws.stage_dir("chunk", "k-a") / "chunks.jsonl", first)
    write_jsonl(
        ws.stage_dir("chunk", "k-b") / "chunks.jsonl", [{**row, "chunk_id": "c3", "text": "3"}]
    )
    found = ws.kept_chunks({"c1", "c3", "gone"})
    assert {k: v["text"] for k, v in found.items()} == {"c1": "one", "c3": "3"}
    assert Workspace(tmp_path / "empty").kept_chunks({"c1"}) == {}
