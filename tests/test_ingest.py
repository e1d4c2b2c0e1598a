"""Ingest: each format read, each rejection reason produced and named, counts that add up."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from faqforge.config import IngestConfig
from faqforge.records import Document, Rejection
from faqforge.storage import iter_jsonl
from tasks.ingest import doc_id_for, html_to_text, ingest, ingest_corpus, normalise_text
from testsupport.corpus_faults import encrypted_pdf, noise

SAMPLE_CORPUS = Path(__file__).resolve().parent.parent / "faqforge" / "sample_corpus"
CFG = IngestConfig()


def write(root: Path, name: str, content: str | bytes) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a\r\nb\rc", "a\nb\nc"),  # Windows and old-Mac newlines unified
        ("a   \nb\t\n", "a\nb"),  # trailing spaces stripped
        ("a\n\n\n\n\nb", "a\n\nb"),  # runs of blank lines collapsed to one
        ("\n\n  a\n\n", "a"),  # leading/trailing blank lines dropped
        ("cafe\u0301", "caf\u00e9"),  # NFC: combining accent folded into one code point
    ],
)
def test_normalise_text(raw: str, expected: str) -> None:
    assert normalise_text(raw) == expected


def test_markdown_and_text_are_read_with_title_from_heading_or_stem(tmp_path: Path) -> None:
    write(tmp_path, "guide.md", "Intro line\n\n# Setup guide\n\nRun it.  \n")
    write(tmp_path, "notes/plain.txt", "\ufeffNo heading here.\r\n")  # BOM + CRLF
    docs, rejections = ingest_corpus(tmp_path, CFG)
    assert rejections == []
    by_source = {d.source: d for d in docs}
    assert by_source["guide.md"].title == "Setup guide"
    assert by_source["guide.md"].text == "Intro line\n\n# Setup guide\n\nRun it."
    assert by_source["notes/plain.txt"].title == "plain"  # no heading: the file stem
    assert by_source["notes/plain.txt"].text == "No heading here."
    assert by_source["notes/plain.txt"].format == "txt"


def test_html_drops_script_style_nav_and_keeps_headings_and_links(tmp_path: Path) -> None:
    html = """<html><head><title>T</title><style>p { color: red }</style></head><body>
    <nav><a href="/">Home</a></nav><script>var secret = 1;</script>
    <h1>Guide</h1><p>Read the
      <a href="https://example.org/docs">docs</a> first.</p>
    <h3>Details</h3><ul><li>one</li><li>two</li></ul></body></html>"""
    write(tmp_path, "page.HTM", html)  # upper-case extension still matches
    [doc], _ = ingest_corpus(tmp_path, CFG)
    assert doc.text == (
        "# Guide\n\nRead the docs (https://example.org/docs) first.\n\n### Details\n\n- one\n- two"
    )
    assert (doc.title, doc.format) == ("Guide", "html")


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ('<a href="#top">Back</a>', "Back"),  # in-page anchors are not worth a URL
        ('<a href="https://x.org">https://x.org</a>', "https://x.org"),  # URL shown once
        ("<p>a<br>b</p>", "a\nb"),  # <br> is a line break
        ("<!-- hidden --><p>shown</p>", "shown"),  # comments dropped
    ],
)
def test_html_to_text_cases(html: str, expected: str) -> None:
    assert html_to_text(html) == expected


# A man page as git's asciidoc writes it: a title, a code listing whose comments start with
# "#", a definition list of options, a table and a footer.
MANUAL = """<html><body><div id="header"><h1>git-demo(1) Manual Page</h1><h2>NAME</h2>
<div class="sectionbody"><p>git-demo - Show how pages are read</p></div></div>
<div id="toc"><div id="toctitle">Table of Contents</div><ul><li>NAME</li></ul></div>
<div id="content"><h2>EXAMPLES</h2><div class="listingblock"><pre><code># Proxy settings
[core]

        gitproxy = command</code></pre></div>
<h2>OPTIONS</h2><div class="dlist"><dl>
<dt class="hdlist1">-q</dt><dt class="hdlist1">--quiet</dt>
<dd><p>Operate <code>quietly</code>.</p><div class="paragraph"><p>Errors still show.</p></div>
<div class="listingblock"><pre>git demo -q</pre></div></dd>
<dt class="hdlist1">&lt;path&gt;</dt><dd><p>Where to look.</p></dd>
</dl></div>
<table><tr><th>Value</th><th>Meaning</th></tr><tr><td>auto</td><td>pick one</td></tr></table>
<table><tr><td class="icon"><div class="title">Note</div></td><td>Keep backups.</td></tr></table>
</div><div id="footer"><div id="footer-text">Last updated 2024-05-31 00:35:55 UTC</div></div>
</body></html>"""


def test_html_keeps_structure_and_records_dropped_furniture() -> None:
    dropped: list[dict[str, str]] = []
    text = html_to_text(MANUAL, dropped)
    # Code stays code: its "# Proxy settings" comment never becomes a heading.
    assert "```\n# Proxy settings\n[core]\n\n        gitproxy = command\n```" in text
    assert "\n# Proxy settings" not in text.split("```")[0]
    # Options: consecutive dt terms joined, each dd paragraph a ": " line, its code after it.
    assert (
        "-q, --quiet\n: Operate `quietly`.\n: Errors still show.\n\n```\ngit demo -q\n```" in text
    )
    assert "<path>\n: Where to look." in text
    assert "auto\n: Meaning: pick one" in text  # a table row: first cell the term
    assert "Note: Keep backups." in text  # an admonition is a sentence
    assert "# git-demo(1) Manual Page" in text and "git-demo - Show how pages are read" in text
    assert "Last updated" not in text and "Table of Contents" not in text
    assert [d["reason"] for d in dropped] == ["table_of_contents", "footer"]
    assert dropped[1]["text"] == "Last updated 2024-05-31 00:35:55 UTC"


def test_text_files_are_read_for_structure(tmp_path: Path) -> None:
    write(tmp_path, "topic.txt", "Title\n*****\n\nlen(d)\n\n   Return the number of items.\n")
    [doc], _ = ingest_corpus(tmp_path, CFG)
    assert doc.text == "# Title\n\nlen(d)\n: Return the number of items."
    assert doc.title == "Title"


def test_pdf_text_layer_is_read(tmp_path: Path) -> None:
    shutil.copy(SAMPLE_CORPUS / "evaluation.pdf", tmp_path / "evaluation.pdf")
    [doc], rejections = ingest_corpus(tmp_path, CFG)
    assert rejections == []
    assert doc.format == "pdf"
    assert "ROUGE-L is a score based on the longest common subsequence" in doc.text


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("blank.md", "  \n\n\t\n", "empty"),  # whitespace only
        ("scripts-only.html", "<script>x()</script><style>p{}</style>", "empty"),  # no visible text
        ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "wrong_type"),  # PNG magic
        ("blob.md", b"some\x00bytes\x00with NULs", "binary"),  # NUL bytes, no known magic
        ("report.html", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n", "wrong_type"),
        ("archive.txt", b"PK\x03\x04\x14\x00", "wrong_type"),  # a docx saved as .txt
        ("fake.pdf", b"<html><body>Not a PDF.</body></html>", "wrong_type"),
        # Latin-1: cp1250 and cp1252 read "è" differently and score alike, so no guess.
        ("latin1.md", "caf\u00e9 cr\u00e8me".encode("latin-1"), "not_utf8"),
        ("noise.txt", noise(0), "not_utf8"),  # binary without NUL bytes: no encoding fits
        ("broken.pdf", b"%PDF-1.4\nthis is not a pdf body", "unreadable_pdf"),
        ("locked.pdf", encrypted_pdf(), "encrypted_pdf"),
    ],
)
def test_each_rejection_reason_names_the_file(
    tmp_path: Path, name: str, content: str | bytes, reason: str
) -> None:
    path = write(tmp_path, name, content)
    docs, [rejection] = ingest_corpus(tmp_path, CFG)
    assert docs == []
    assert (rejection.record_id, rejection.stage, rejection.reason) == (name, "ingest", reason)
    assert rejection.detail.startswith(f"{name}: ")
    assert rejection.record == {"source": name, "bytes": path.stat().st_size}


@pytest.mark.parametrize(
    ("text", "encoding", "detected"),
    [
        ("Привет, это русский текст для проверки кодировки.", "cp1251", "cp1251"),
        ("日本語のテキストです。これはテストです。", "shift_jis", "cp932"),  # cp932 ⊃ Shift-JIS
        ("# UTF-16\n\nWith a byte order mark, so NUL bytes are text.", "utf-16", "utf_16"),
    ],
)
def test_non_utf8_text_is_decoded_when_detection_is_confident(
    tmp_path: Path, text: str, encoding: str, detected: str
) -> None:
    write(tmp_path, "legacy.txt", text.encode(encoding))
    write(tmp_path, "plain.md", "# Plain\n\nUTF-8 already.")
    encodings: dict[str, str] = {}
    docs, rejections = ingest_corpus(tmp_path, CFG, encodings)
    assert rejections == []
    assert {d.source: d.text for d in docs}["legacy.txt"] == normalise_text(text)
    assert encodings == {"legacy.txt": detected}  # UTF-8 files are not listed


def test_rejected_encodings_say_why(tmp_path: Path) -> None:
    write(tmp_path, "latin1.md", "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e".encode("latin-1"))
    write(tmp_path, "noise.txt", noise(1))
    _, rejections = ingest_corpus(tmp_path, CFG)
    detail = {r.record_id: r.detail for r in rejections}
    assert "invalid UTF-8 at byte 3; encoding ambiguous (cp1250, cp1252" in detail["latin1.md"]
    assert "no known encoding reads it as text; re-save as UTF-8" in detail["noise.txt"]


def test_too_large_is_rejected_before_reading(tmp_path: Path) -> None:
    write(tmp_path, "big.md", "x" * 101)
    _, [rejection] = ingest_corpus(tmp_path, IngestConfig(max_file_bytes=100))
    assert rejection.reason == "too_large"
    assert "101 bytes > ingest.max_file_bytes=100" in rejection.detail


def test_symlinks_escaping_the_root_are_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "corpus", tmp_path / "outside"
    write(outside, "secret.md", "# Secret\n\nnot part of the corpus")
    write(root, "real.md", "# Real\n\ninside")
    os.symlink(outside / "secret.md", root / "escape.md")  # file link out of the root
    os.symlink(outside, root / "linked-dir")  # directory link out of the root
    os.symlink(root / "real.md", root / "alias.md")  # a link inside the root is fine
    docs, rejections = ingest_corpus(root, CFG)
    assert sorted(d.source for d in docs) == ["alias.md", "real.md"]
    assert {(r.record_id, r.reason) for r in rejections} == {
        ("escape.md", "outside_root"),
        ("linked-dir", "outside_root"),
    }
    assert all("secret" not in d.text for d in docs)


def test_dangling_symlink_is_rejected_not_raised(tmp_path: Path) -> None:
    os.symlink(tmp_path / "gone.md", tmp_path / "dangling.md")
    _, [rejection] = ingest_corpus(tmp_path, CFG)
    assert (rejection.record_id, rejection.reason) == ("dangling.md", "unreadable")


def test_only_configured_extensions_are_considered_in_sorted_order(tmp_path: Path) -> None:
    for name in ["b.md", "a.TXT", "c/z.md", "c/a.md", "skip.rst", "skip.json"]:
        write(tmp_path, name, f"text of {name}")
    docs, rejections = ingest_corpus(tmp_path, CFG)
    assert [d.source for d in docs] == ["a.TXT", "b.md", "c/a.md", "c/z.md"]
    assert rejections == []


def test_doc_id_follows_the_path_and_content_hash_follows_the_text(tmp_path: Path) -> None:
    write(tmp_path, "faq.md", "# FAQ\n\nfirst version")
    [before], _ = ingest_corpus(tmp_path, CFG)
    write(tmp_path, "faq.md", "# FAQ\n\nsecond version")
    [after], _ = ingest_corpus(tmp_path, CFG)
    assert before.doc_id == after.doc_id == doc_id_for("faq.md")
    assert before.content_hash != after.content_hash


def test_missing_root_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError, match="nowhere"):
        ingest_corpus(tmp_path / "nowhere", CFG)


def test_task_counts_add_up_and_a_rerun_reuses_the_output(tmp_path: Path) -> None:
    corpus, ws = tmp_path / "corpus", tmp_path / "ws"
    write(corpus, "one.md", "# One\n\ntext")
    write(corpus, "two.txt", "more text")
    write(corpus, "empty.md", "")
    write(corpus, "bad.txt", b"\x00\x01\x02")
    write(corpus, "cyrillic.txt", "Привет, это русский текст для проверки.".encode("cp1251"))

    out = ingest.fn(str(corpus), CFG, str(ws))  # outside a Prefect run: no artifact, no error
    assert out.counts.as_dict() == {"in": 5, "out": 3, "rejected": {"empty": 1, "binary": 1}}
    docs = out.read("documents", Document)
    assert [d.source for d in docs] == ["cyrillic.txt", "one.md", "two.txt"]
    assert len(out.read("rejections", Rejection)) == 2
    # The one file decoded by detection is listed with its encoding.
    assert list(iter_jsonl(out.path("encodings"))) == [
        {"source": "cyrillic.txt", "encoding": "cp1251"}
    ]
    assert out.stats["decoded_not_utf8"] == 1
    assert out.stats["dropped_blocks"] == {} and list(iter_jsonl(out.path("dropped"))) == []

    marker = Path(out.dir) / "_SUCCESS"
    written = marker.stat().st_mtime_ns
    again = ingest.fn(str(corpus), CFG, str(ws))
    assert again == out
    assert marker.stat().st_mtime_ns == written  # not rewritten

    write(corpus, "two.txt", "changed text")
    assert ingest.fn(str(corpus), CFG, str(ws)).key != out.key


def test_task_lists_page_furniture_it_dropped(tmp_path: Path) -> None:
    write(tmp_path / "corpus", "git-demo.html", MANUAL)
    out = ingest.fn(str(tmp_path / "corpus"), CFG, str(tmp_path / "ws"))
    assert out.stats["dropped_blocks"] == {"table_of_contents": 1, "footer": 1}
    rows = list(iter_jsonl(out.path("dropped")))
    assert {(r["source"], r["reason"]) for r in rows} == {
        ("git-demo.html", "table_of_contents"), ("git-demo.html", "footer"),
    }  # fmt: skip


def test_sample_corpus_ingests_without_rejections() -> None:
    docs, rejections = ingest_corpus(SAMPLE_CORPUS, CFG)
    assert rejections == []
    assert {d.format for d in docs} == {"md", "txt", "html", "pdf"}
    assert 8 <= len(docs) <= 12
    for doc in docs:
        assert "according to the passage" not in doc.text.lower(), doc.source


def test_ten_thousand_small_files_one_document_each(tmp_path: Path) -> None:
    """No per-file overhead that grows with the corpus (bench/ingest_many_files.py times it)."""
    corpus = tmp_path / "corpus"
    for i in range(10_000):
        write(corpus, f"d{i // 100:03d}/note-{i:05d}.md", f"# Note {i}\n\nItem {i} text.")
    out = ingest.fn(str(corpus), CFG, str(tmp_path / "ws"))
    assert out.counts.as_dict() == {"in": 10_000, "out": 10_000, "rejected": {}}
    docs = out.read("documents", Document)
    assert len({d.doc_id for d in docs}) == 10_000
    assert docs[1234].source == "d012/note-01234.md" and docs[1234].text.endswith("Item 1234 text.")


def test_a_symlink_loop_and_a_named_pipe_are_one_rejection_each(tmp_path: Path) -> None:
    write(tmp_path, "good.md", "# Guide\n\nThe guide is read.\n")
    (tmp_path / "loop.md").symlink_to(tmp_path / "loop.md")  # points at itself
    (tmp_path / "a.md").symlink_to(tmp_path / "b.md")
    (tmp_path / "b.md").symlink_to(tmp_path / "a.md")
    os.mkfifo(tmp_path / "pipe.md")  # reading it would block forever
    docs, rejections = ingest_corpus(tmp_path, CFG)
    assert [d.source for d in docs] == ["good.md"]
    by_source = {r.record_id: r.reason for r in rejections}
    assert by_source == {"a.md": "unreadable", "b.md": "unreadable", "loop.md": "unreadable",
                         "pipe.md": "not_a_file"}  # fmt: skip
