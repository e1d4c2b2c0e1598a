"""One corpus holding every kind of bad file beside good ones: the refresh flow completes,
publishes the good documents and records each bad file in rejections.jsonl with a reason."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from faqforge.storage import iter_jsonl, read_json
from testsupport.corpus_faults import encrypted_pdf, noise

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent

BAD = {  # file → the rejection reason it must get
    "broken.pdf": "unreadable_pdf",
    "locked.pdf": "encrypted_pdf",
    "image.txt": "wrong_type",  # a PNG behind a text extension
    "noise.md": "not_utf8",  # binary without NUL: no encoding reads it
    "latin1.md": "not_utf8",  # Latin-1, ambiguous between cp1250 and cp1252
    "blank.md": "empty",
    "scripts-only.html": "empty",
    "huge.txt": "too_large",
    "escape.md": "outside_root",
    "linked-dir": "outside_root",
}

TINY = "configs/tiny-llama_lora_cpu.yaml"  # the fast tests' student


def test_refresh_publishes_the_good_files_and_names_every_bad_one(
    prefect_harness, monkeypatch, tmp_path
):
    from flows.refresh import refresh

    monkeypatch.chdir(ROOT)
    corpus, outside = tmp_path / "corpus", tmp_path / "outside"
    corpus.mkdir()
    outside.mkdir()
    good = sorted((ROOT / "faqforge" / "sample_corpus").glob("*.md"))[:3]
    for path in good:
        shutil.copy(path, corpus / path.name)
    (corpus / "cyrillic.txt").write_bytes(
        "Привет. Это русский текст для проверки кодировки.".encode("cp1251")
    )
    (corpus / "page.html").write_text(
        "<h1>Page</h1><script>var scriptMarker = 1;</script><style>p{}</style>"
        "<p>The nightly refresh publishes a new dataset version.</p>"
    )
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4\nnot a pdf body")
    (corpus / "locked.pdf").write_bytes(encrypted_pdf())
    (corpus / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (corpus / "noise.md").write_bytes(noise(0))
    (corpus / "latin1.md").write_bytes("caf\u00e9 cr\u00e8me".encode("latin-1"))
    (corpus / "blank.md").write_text(" \n\n")
    (corpus / "scripts-only.html").write_text("<script>x()</script><style>p{}</style>")
    (corpus / "huge.txt").write_text("x" * 100_001)
    (outside / "secret.md").write_text("# Secret\n\nOUTSIDE_MARKER is not part of the corpus.")
    os.symlink(outside / "secret.md", corpus / "escape.md")
    os.symlink(outside, corpus / "linked-dir")

    summary = refresh(TINY, ["ingest.max_file_bytes=100000"], str(corpus),
                      str(tmp_path / "ws"))  # fmt: skip
    version = Path(summary["dir"])
    rows = iter_jsonl(version / "rejections.jsonl")
    rejected = {r["record_id"]: r for r in rows if r["stage"] == "ingest"}
    assert {name: r["reason"] for name, r in rejected.items()} == BAD
    assert all(r["detail"].startswith(f"{name}: ") for name, r in rejected.items())
    manifest = read_json(version / "manifest.json")
    n_good = len(good) + 2
    assert manifest["stages"]["ingest"]["in"] == n_good + len(BAD)
    assert manifest["stages"]["ingest"]["out"] == n_good
    rows = list(iter_jsonl(version / "train.jsonl")) + list(iter_jsonl(version / "eval.jsonl"))
    sources = {r["source"] for r in rows}
    assert {p.name for p in good} <= sources and not sources & set(BAD)
    text = " ".join(r["question"] + " " + r["answer"] for r in rows)
    assert "scriptMarker" not in text and "OUTSIDE_MARKER" not in text
    assert "page.html" in sources and "cyrillic.txt" in sources  # HTML text, decoded cp1251
