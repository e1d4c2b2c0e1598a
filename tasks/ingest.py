"""Ingest: a folder of md/txt/html/pdf files → normalised ``Document`` records.

Each file either becomes one document or one ``Rejection`` naming the file and the reason
(``outside_root``, ``too_large``, ``binary``, ``not_utf8``, ``empty``, ``encrypted_pdf``,
``unreadable_pdf``, and ``unreadable`` for OS errors such as a dangling link). Every format
becomes faqforge's markdown subset (``faqforge/structure.py``): HTML headings become ``#`` lines,
``pre`` fenced code, ``dl`` lists and tables definition entries, and navigation, footers and
tables of contents are dropped, each listed with its reason in the stage's ``dropped.jsonl``;
plain text gets its underlined headings, indented code and man-page style definitions read
the same way; scripts and styles are dropped.
Text that is not UTF-8 is decoded when charset-normalizer names one encoding with confidence
(each such file is listed with its encoding in the stage's ``encodings.jsonl``); when no
encoding fits, or rival encodings would read the bytes differently, the file is rejected as
``not_utf8`` rather than guessed at.
Not handled: URLs, OCR of scanned PDFs, files whose extension is not in
``IngestConfig.extensions`` (not considered).
Symlinked directories are not followed; one that points outside the root is rejected.
"""

from __future__ import annotations

import io
import os
import re
import stat
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup, Comment, NavigableString

from faqforge.config import IngestConfig
from faqforge.progress import Progress
from faqforge.records import Document, Record, Rejection
from faqforge.stage import (
    StageCounts,
)
from faqforge.storage import sha256_text
from faqforge.structure import FENCE, definition, fence, text_to_markdown
from faqforge.tasking import Computed, stage

STAGE = "ingest"
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_DROP_TAGS = ["script", "style", "nav", "noscript", "template", "head"]
# Encodings tried on text that is not UTF-8: what documents are commonly saved in. A short
# list keeps detection fast and rival readings few (every single-byte code page decodes
# anything).
DETECTABLE_ENCODINGS = (
    "utf_16", "utf_32", "cp1252", "latin_1", "iso8859_15", "cp1250", "cp1251", "koi8_r",
    "cp932", "shift_jis", "euc_jp", "gb18030", "big5", "euc_kr",
)  # fmt: skip
MAX_CHAOS = 0.1  # charset-normalizer's "mess" ratio above which a reading is not considered
_WIDE_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")
_BLOCK_TAGS = re.compile(
    r"^(p|div|section|article|header|footer|main|aside|blockquote|pre|table|tr|ul|ol|dl|dt|dd"
    r"|figure|figcaption|hr)$"
)


class Rejected(Exception):
    """A file that cannot become a document; ``reason`` is the rejection rule."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def normalise_text(text: str) -> str:
    """Unify newlines, strip trailing spaces, keep at most one blank line in a row.

    >>> normalise_text("a  \\r\\n\\n\\n\\nb\\f")
    'a\\n\\nb'
    """
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# Page furniture, never content: navigation, footers, tables of contents (by tag, id, class or
# ARIA role). Each dropped block is recorded with its reason.
_CHROME = {
    "navigation": re.compile(
        r"^(nav|navbar|navigation|breadcrumbs?|menu|sidebar|skip-?link)", re.I
    ),
    "footer": re.compile(r"^(footer|footer-text|site-footer|page-footer|copyright)$", re.I),
    "table_of_contents": re.compile(r"^(toc|toctitle|table-of-contents|contents)$", re.I),
}
_TOC_TITLE = re.compile(r"^\s*(table of )?contents\s*$", re.I)
_ADMONITION = re.compile(r"^(note|tip|warning|important|caution)$", re.I)


def _chrome_reason(tag: Any) -> str | None:
    if tag.name == "nav" or tag.get("role") == "navigation":
        return "navigation"
    if tag.name == "footer" or tag.get("role") == "contentinfo":
        return "footer"
    names = [tag.get("id") or "", *(tag.get("class") or [])]
    for reason, pattern in _CHROME.items():
        if any(pattern.match(n) for n in names if n):
            return reason
    return None


def drop_chrome(soup: Any) -> list[dict[str, str]]:
    """Remove navigation, footers and tables of contents; ``[{reason, text}]`` of each."""
    dropped = []
    for tag in list(soup.find_all(True)):
        if tag.parent is None:  # already removed with an ancestor
            continue
        reason = _chrome_reason(tag)
        heading = re.fullmatch(r"h[1-6]", tag.name or "")
        if reason is None and heading and _TOC_TITLE.match(tag.get_text(" ", strip=True)):
            reason = "table_of_contents"
            following = tag.find_next_sibling(["ul", "ol", "div"])
            if following is not None:
                dropped.append({"reason": reason, "text": _excerpt(following)})
                following.decompose()
        if reason is not None:
            dropped.append({"reason": reason, "text": _excerpt(tag)})
            tag.decompose()
    return dropped


def _excerpt(tag: Any) -> str:
    return " ".join(tag.get_text(" ", strip=True).split())[:200]


def _text(tag: Any) -> str:
    """A tag's text on one line, spaced as written (inline tags add no spaces)."""
    return " ".join(tag.get_text().split())


def _paragraphs_of(tag: Any) -> list[str]:
    """The text of each block inside ``tag`` (or of ``tag`` itself when it has none)."""
    parts = tag.find_all(["p", "li"]) or [tag]
    return [t for p in parts if (t := _text(p))]


def _definition_lists(soup: Any) -> None:
    """``dl`` → definition entries (terms of consecutive ``dt`` joined), code in a ``dd`` after."""
    for dl in reversed(soup.find_all("dl")):
        entries: list[str] = []
        terms: list[str] = []
        for child in dl.find_all(["dt", "dd"], recursive=False):
            if child.name == "dt":
                terms.append(_text(child))
                continue
            codes = [pre.extract().get_text() for pre in child.find_all("pre")]
            entries.append(definition(", ".join(terms), _paragraphs_of(child)))
            entries += [fence(code) for code in codes]
            terms = []
        entries += terms  # a trailing term with no description
        dl.replace_with(NavigableString("\n\n" + "\n\n".join(entries) + "\n\n"))


def _tables(soup: Any) -> None:
    """Table rows → definition entries: the first cell is the term, the rest (with their
    column headers) the description. An admonition table ("Note" | text) is a paragraph."""
    for table in reversed(soup.find_all("table")):
        rows = [[_text(c) for c in tr.find_all(["th", "td"])] for tr in table.find_all("tr")]
        rows = [r for r in rows if any(r)]
        if len(rows) == 1 and len(rows[0]) == 2 and _ADMONITION.match(rows[0][0]):
            text = f"{rows[0][0]}: {rows[0][1]}"
        else:
            header = rows[0] if table.find("th") and len(rows) > 1 else []
            body = rows[1:] if header else rows
            entries = []
            for row in body:
                cells = [
                    f"{header[i]}: {c}" if i < len(header) and header[i] else c
                    for i, c in enumerate(row[1:], 1)
                    if c
                ]
                entries.append(definition(row[0], ["; ".join(cells)]) if cells else row[0])
            text = "\n\n".join(entries)
        table.replace_with(NavigableString(f"\n\n{text}\n\n"))


def html_to_text(html: str, dropped: list[dict[str, str]] | None = None) -> str:
    """Visible text of an HTML page in faqforge's markdown subset (``faqforge/structure.py``):
    headings as ``#`` lines, ``pre`` as fenced code, ``dl`` and tables as definition entries,
    links as ``text (url)``. Navigation, footers and tables of contents are dropped; when
    ``dropped`` is given, each one is appended to it as ``{reason, text}``.

    >>> html_to_text('<h2>Run</h2><p>See <a href="https://x.org">docs</a>.</p>')
    '## Run\\n\\nSee docs (https://x.org).'
    """
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(_DROP_TAGS):
        tag.decompose()
    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        comment.extract()
    found = drop_chrome(soup)
    if dropped is not None:
        dropped += found
    # Source line breaks inside running text are layout, not content (except in <pre>).
    for string in soup.find_all(string=True):
        if type(string) is NavigableString and string.find_parent("pre") is None:
            string.replace_with(re.sub(r"\s+", " ", string))
    for code in soup.find_all(["code", "tt"]):
        if code.find_parent("pre") is None and (text := code.get_text().strip()):
            tick = "``" if "`" in text else "`"
            code.replace_with(f"{tick}{text}{tick}")
    for link in soup.find_all("a", href=True):
        label, href = link.get_text(" ", strip=True), str(link["href"]).strip()
        keep_url = href and not href.startswith(("#", "javascript:")) and href != label
        link.replace_with(f"{label} ({href})" if keep_url and label else label or href)
    _definition_lists(soup)
    _tables(soup)
    for pre in soup.find_all("pre"):
        pre.replace_with(NavigableString(f"\n\n{fence(pre.get_text())}\n\n"))
    for heading in soup.find_all(re.compile(r"^h[1-6]$")):
        title = heading.get_text(" ", strip=True)
        heading.replace_with(f"\n\n{'#' * int(heading.name[1])} {title}\n\n" if title else "")
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for item in soup.find_all("li"):
        item.insert(0, "- ")
        item.insert_before("\n")
    for block in soup.find_all(_BLOCK_TAGS):
        block.insert_before("\n\n")
        block.insert_after("\n\n")
    return normalise_text(_strip_outside_fences(soup.get_text()))


def _strip_outside_fences(text: str) -> str:
    """Strip each line's indentation, except inside fenced code (indentation is code there)."""
    out, bar = [], None
    for line in text.split("\n"):
        if bar is None and (m := FENCE.match(line)):
            bar = m.group(1)
            out.append(line.strip())
        elif bar is not None:
            out.append(line.rstrip())
            if line.strip().startswith(bar) and line.strip().strip(bar[0]) == "":
                bar = None
        else:
            out.append(line.strip())
    return "\n".join(out)


def pdf_to_text(data: bytes) -> str:
    """Text layer of a PDF, pages separated by a blank line; raises ``Rejected``."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise Rejected("encrypted_pdf", "PDF is encrypted; decrypt it before ingesting")
        pages = [page.extract_text() or "" for page in reader.pages]
    except Rejected:
        raise
    except Exception as exc:  # pypdf raises many types on damaged files
        raise Rejected("unreadable_pdf", f"{type(exc).__name__}: {exc}") from exc
    return "\n\n".join(pages)


def detect_encoding(data: bytes, utf8_error: str) -> tuple[str, str]:
    """``(text, encoding)`` of non-UTF-8 bytes when one reading is clearly right; else rejects.

    Candidates that score as well as the best but decode to other text (Latin-1 French read
    as cp1250 or cp1252) make the guess a coin toss: the file is rejected naming them.
    """
    from charset_normalizer import from_bytes

    matches = from_bytes(data, cp_isolation=list(DETECTABLE_ENCODINGS), threshold=MAX_CHAOS)
    best = matches.best()
    if best is None:
        raise Rejected("not_utf8", f"{utf8_error}, and no known encoding reads it as text; "
                       "re-save as UTF-8")  # fmt: skip
    text = str(best)
    rivals = sorted(
        m.encoding
        for m in matches
        if m.chaos <= best.chaos + 0.01 and m.coherence >= best.coherence - 0.05
        and str(m) != text
    )  # fmt: skip
    if rivals:
        names = ", ".join([best.encoding, *rivals])
        raise Rejected("not_utf8", f"{utf8_error}; encoding ambiguous ({names}): re-save as UTF-8")
    return text, best.encoding


def decode_text(data: bytes) -> tuple[str, str]:
    """``(text, encoding)``: UTF-8 (a BOM is dropped), else a confidently detected encoding."""
    wide_bom = data.startswith(_WIDE_BOMS)  # UTF-16/32 text is full of NUL bytes
    if not wide_bom and b"\x00" in data[:8192]:
        raise Rejected("binary", "NUL bytes in a text file; is the extension wrong?")
    try:
        return data.decode("utf-8-sig"), "utf_8"
    except UnicodeDecodeError as exc:
        return detect_encoding(data, f"invalid UTF-8 at byte {exc.start}")


# Content that an extension does not announce: a PDF saved as .html would become training
# pairs made of PDF syntax. (kind, leading bytes, the extension it should have)
MAGIC = (
    ("PDF", b"%PDF-", ".pdf"),
    ("ZIP archive (docx, xlsx, epub?)", b"PK\x03\x04", ".zip"),
    ("PNG image", b"\x89PNG\r\n\x1a\n", ".png"),
    ("JPEG image", b"\xff\xd8\xff", ".jpg"),
    ("GIF image", b"GIF8", ".gif"),
    ("gzip archive", b"\x1f\x8b", ".gz"),
    ("ELF executable", b"\x7fELF", ".elf"),
)


def check_content_type(data: bytes, suffix: str) -> None:
    """Raise ``Rejected("wrong_type")`` when the bytes are another format than ``suffix``."""
    head = data[:1024].lstrip()
    if suffix == ".pdf":
        if b"%PDF-" not in data[:1024]:
            raise Rejected("wrong_type", f"no %PDF- header: not a PDF (starts {data[:16]!r})")
        return
    for kind, magic, ext in MAGIC:
        if head.startswith(magic):
            hint = "; rename it to .pdf" if ext == ".pdf" else ""
            raise Rejected("wrong_type", f"content is a {kind}, not {suffix} text{hint}")


def extract_text(
    data: bytes, suffix: str, dropped: list[dict[str, str]] | None = None
) -> tuple[str, str | None]:
    """Normalised text of one file's bytes, chosen by its (lower-case) suffix, in faqforge's
    markdown subset, and the text encoding it was read in (None for PDF). Page furniture an
    HTML file drops is appended to ``dropped``."""
    if suffix == ".pdf":
        return normalise_text(pdf_to_text(data)), None
    text, encoding = decode_text(data)
    if suffix in (".html", ".htm"):
        return html_to_text(text, dropped), encoding
    if suffix == ".txt":  # underlined headings, indented code and definitions
        return normalise_text(text_to_markdown(normalise_text(text))), encoding
    return normalise_text(text), encoding


def title_of(text: str, path: Path) -> str:
    """The first markdown heading, else the file stem."""
    match = HEADING.search(text)
    return match.group(1) if match else path.stem


def doc_id_for(source: str) -> str:
    """Stable across content changes: derived from the path relative to the corpus root."""
    return "doc-" + sha256_text(source, 12)


def read_document(
    path: Path, root: Path, cfg: IngestConfig, dropped: list[dict[str, str]] | None = None
) -> tuple[Document, str | None]:
    """One file → one document and the text encoding it was read in (None for PDF); raises
    ``Rejected`` with the rule it broke. ``root`` must be resolved already. Blocks dropped as
    page furniture are appended to ``dropped`` with the file's ``source``."""
    real = resolved(path)
    if not real.is_relative_to(root):
        raise Rejected("outside_root", f"resolves to {real}, outside the corpus root")
    try:
        info = real.stat()
        if not stat.S_ISREG(info.st_mode):  # reading a named pipe would wait forever
            raise Rejected("not_a_file", "a named pipe, socket or device, not a regular file")
        if info.st_size > cfg.max_file_bytes:
            limit = f"ingest.max_file_bytes={cfg.max_file_bytes}"
            raise Rejected("too_large", f"{info.st_size} bytes > {limit}")
        data = real.read_bytes()
    except OSError as exc:  # dangling link, permissions, vanished mid-run
        raise Rejected("unreadable", f"{type(exc).__name__}: {exc.strerror or exc}") from exc
    suffix = path.suffix.lower()
    check_content_type(data, suffix)
    furniture: list[dict[str, str]] = []
    text, encoding = extract_text(data, suffix, furniture)
    if not text:
        raise Rejected("empty", "no text after extraction (scanned PDF or blank file?)")
    source = path.relative_to(root).as_posix()
    if dropped is not None:
        dropped += [{"source": source, **d} for d in furniture]
    doc = Document(
        doc_id=doc_id_for(source),
        source=source,
        format="html" if suffix == ".htm" else suffix.lstrip("."),
        title=title_of(text, path),
        text=text,
        content_hash=sha256_text(text),
    )
    return doc, encoding


def resolved(path: Path) -> Path:
    """``path.resolve()``; a symlink loop is that file's rejection, not the run's end."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as exc:  # RuntimeError: "Symlink loop" before 3.13
        raise Rejected("unreadable", f"cannot resolve the link: {exc}") from exc


def _size(path: Path) -> int:
    for size_of in (path.stat, path.lstat):  # a dangling or looping link: its own size
        try:
            return size_of().st_size
        except (OSError, RuntimeError):
            continue
    return 0


def iter_candidates(root: Path, extensions: list[str]) -> Iterator[Path]:
    """Files with a wanted suffix, plus symlinked directories, in sorted order."""
    wanted = {e.lower() for e in extensions}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        here = Path(dirpath)
        for name in sorted(filenames):
            if os.path.splitext(name)[1].lower() in wanted:
                yield here / name
        # os.walk does not descend into them; one pointing outside must not vanish silently.
        for name in dirnames:
            if (here / name).is_symlink():
                yield here / name


def ingest_corpus(
    root: Path,
    cfg: IngestConfig,
    encodings: dict[str, str] | None = None,
    dropped: list[dict[str, str]] | None = None,
) -> tuple[list[Document], list[Rejection]]:
    """Every candidate file under ``root`` → a document or a rejection (never both).

    ``encodings``, when given, receives ``source → encoding`` for each document that was not
    UTF-8 and was decoded by detection; ``dropped`` each block of page furniture (navigation,
    footer, table of contents) left out of a document, with its source and reason.
    """
    if not root.is_dir():
        raise NotADirectoryError(f"corpus root {root} is not a directory (check `source`)")
    root = root.resolve()  # once: per-file work stays constant however many files there are
    docs: list[Document] = []
    rejections: list[Rejection] = []
    candidates = list(iter_candidates(root, cfg.extensions))
    for path in Progress("ingest", len(candidates), "files").each(candidates):
        source = path.relative_to(root).as_posix()
        try:
            if path.is_dir():  # a symlinked directory: only an escape is worth reporting
                if (target := resolved(path)).is_relative_to(root):
                    continue
                raise Rejected("outside_root", f"directory link to {target}, not followed")
            doc, encoding = read_document(path, root, cfg, dropped)
            docs.append(doc)
            if encoding not in (None, "utf_8") and encodings is not None:
                encodings[source] = encoding
        except Rejected as rej:
            rejections.append(
                Rejection(
                    record_id=source,
                    stage=STAGE,
                    reason=rej.reason,
                    detail=f"{source}: {rej.detail}",
                    record={"source": source, "bytes": _size(path)},
                )
            )
    return docs, rejections


def _key_params(params: dict[str, Any]) -> dict[str, Any]:
    """Not the corpus path: the output (what was read, by relative path) is the rest of the
    key, so a moved corpus with the same files finds the same folder."""
    return {"cfg": params["cfg"], "workspace": params["workspace"]}


@stage(STAGE, key_on="output", key_params=_key_params)
def ingest(source: str, cfg: IngestConfig, workspace: str) -> Computed:
    """Read the corpus on every run (cheap); the output folder is keyed by what was read."""
    encodings: dict[str, str] = {}
    dropped: list[dict[str, str]] = []
    docs, rejections = ingest_corpus(Path(source), cfg, encodings, dropped)
    counts = StageCounts.of(len(docs) + len(rejections), len(docs), rejections)
    stats = {
        "chars": sum(len(d.text) for d in docs),
        "decoded_not_utf8": len(encodings),
        "dropped_blocks": dict(Counter(d["reason"] for d in dropped)),
    }
    outputs: dict[str, Sequence[Record | dict[str, Any]]] = {
        "documents": docs,
        "rejections": rejections,
        "encodings": [{"source": s, "encoding": e} for s, e in sorted(encodings.items())],
        "dropped": dropped,
    }
    return outputs, counts, stats
