"""Chunk: documents → token-bounded, overlapping ``Chunk`` records with their heading paths.

Sizes are counted in the student's tokens (``tokenizers`` only, no ``transformers``), so a
chunk is exactly as long as the student will see it. Text is split at markdown headings
(the heading path goes into ``heading_path``, not into the text), then packed from the largest
piece that fits: paragraphs, sentences, lines (for lists), and for one over-long sentence,
token windows that end at a word boundary where one exists. A fenced code block and a
definition entry (``faqforge/structure.py``) are kept whole; one longer than a chunk is cut along
its own seams (code at line ends, fenced again; an entry between description lines, each part
under its term, the later ones marked ``(continued)``). Consecutive chunks of one section share
about ``overlap_tokens`` tokens of prose; chunks never overlap across sections, nor out of a
block. ``section_start`` marks a section's first chunk, the one that introduces it.
Not handled: markdown tables get no special treatment beyond line splitting; the same text
twice in one document yields one chunk (chunk ids must be unique).
"""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from tokenizers import Tokenizer

from faqforge.config import ChunkConfig
from faqforge.records import Chunk, Document, Rejection
from faqforge.stage import StageCounts, StageOutput
from faqforge.storage import file_hash, sha256_text
from faqforge.structure import CONTINUED
from faqforge.tasking import Computed, in_prefect_run, stage

STAGE = "chunk"
log = logging.getLogger(__name__)
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
# Largest piece first: paragraphs, sentences (across soft-wrapped lines), then lines (lists).
_LEVELS = (re.compile(r"\n\s*\n"), re.compile(r"(?<=[.!?])\s+"), re.compile(r"\n"))
_SENTENCE_START = re.compile(r"(?<=[.!?])\s+|\n\s*")


def count_tokens(tokenizer: Tokenizer, text: str) -> int:
    """Student tokens in ``text``, without BOS/EOS."""
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


def split_sections(text: str) -> list[tuple[list[str], str]]:
    """Markdown → ``(heading path, body)`` per non-empty section; fenced code is never a heading.

    >>> split_sections("# A\\nx\\n## B\\ny\\n# C\\n")
    [(['A'], 'x'), (['A', 'B'], 'y')]
    """
    sections: list[tuple[list[str], str]] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []
    in_fence = False
    for line in text.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _HEADING.match(line)
        if heading is None:
            body.append(line)
            continue
        _close_section(sections, path, body)
        body = []
        level = len(heading.group(1))
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, heading.group(2)))
    _close_section(sections, path, body)
    return sections


def _close_section(
    sections: list[tuple[list[str], str]], path: list[tuple[int, str]], body: list[str]
) -> None:
    if text := "\n".join(body).strip():
        sections.append(([title for _, title in path], text))


def split_tokens(text: str, tokenizer: Tokenizer, limit: int) -> list[str]:
    """Cut text into windows of at most ``limit`` tokens, at a space where one is near."""
    pieces: list[str] = []
    rest = text.strip()
    while rest:
        offsets = tokenizer.encode(rest, add_special_tokens=False).offsets
        if len(offsets) <= limit:
            pieces.append(rest)
            break
        cut = offsets[limit][0]
        space = rest.rfind(" ", 0, cut + 1)
        if space > cut // 2:  # a word boundary that keeps at least half the window
            cut = space
        while cut > 1 and count_tokens(tokenizer, rest[:cut]) > limit:
            cut -= 1  # rare: the prefix re-tokenised longer than its share of the whole
        cut = max(cut, 1)
        pieces.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    return [p for p in pieces if p]


def split_keep(pattern: re.Pattern[str], text: str) -> list[tuple[str, str]]:
    """``(separator before, piece)`` pairs; the separator is the whitespace that was cut.

    >>> split_keep(re.compile(r"(?<=[.!?])\\s+"), "One. Two.\\nThree.")
    [('', 'One.'), (' ', 'Two.'), ('\\n', 'Three.')]
    """
    pieces: list[tuple[str, str]] = []
    sep, start = "", 0
    for match in pattern.finditer(text):
        pieces.append((sep, text[start : match.start()]))
        cut = match.group()
        sep, start = "\n\n" if cut.count("\n") > 1 else "\n" if "\n" in cut else " ", match.end()
    pieces.append((sep, text[start:]))
    return [(sep, piece.strip()) for sep, piece in pieces if piece.strip()]


def paragraphs(text: str) -> list[tuple[str, str]]:
    """``split_keep`` on blank lines, but a fenced code block is one paragraph however many
    blank lines it holds (a definition entry never holds one)."""
    pieces: list[tuple[str, str]] = []
    current: list[str] = []
    bar: str | None = None
    for line in [*text.split("\n"), ""]:
        if bar is None and (m := _FENCE.match(line)):
            bar = m.group(1)
        elif bar is not None and line.strip().startswith(bar) and not line.strip(bar[0]).strip():
            bar = None
            current.append(line)
            continue
        if bar is None and not line.strip():
            if current:
                pieces.append(("\n\n" if pieces else "", "\n".join(current).strip()))
                current = []
            continue
        current.append(line)
    if "\n".join(current).strip():  # a fence left open runs to the end of the text
        pieces.append(("\n\n" if pieces else "", "\n".join(current).strip()))
    return pieces


def _is_block(piece: str) -> bool:
    """Code or a definition entry: split only along its own seams, never overlapped."""
    return bool(_FENCE.match(piece)) or "\n: " in piece


def split_block(piece: str, tokenizer: Tokenizer, limit: int) -> list[str]:
    """An over-long block as pieces that each stand alone: code cut at line ends and fenced
    again; a definition entry cut between (then within) description lines, each piece under
    its term."""
    if _FENCE.match(piece):
        lines = piece.split("\n")
        bar, body = lines[0].strip(), lines[1:-1]
        parts = pack_lines(body, tokenizer, limit - count_tokens(tokenizer, f"{bar}\n\n{bar}"))
        return [f"{bar}\n{part}\n{bar}" for part in parts]
    term, *desc = piece.split("\n")
    room = limit - count_tokens(tokenizer, term + "\n: ")
    lines = []
    for line in desc:
        text = line.removeprefix(": ")
        if count_tokens(tokenizer, text) <= room:
            lines.append(text)
        else:
            lines += [p for _, p in split_units(text, tokenizer, room, level=1)]
    parts = pack_lines(lines, tokenizer, room - count_tokens(tokenizer, CONTINUED))
    # Later parts say so: a teacher asks about the term once, from its first part.
    heads = [term, *[term + CONTINUED] * (len(parts) - 1)]
    return [f"{h}\n: " + part.replace("\n", "\n: ") for h, part in zip(heads, parts, strict=True)]


def pack_lines(lines: list[str], tokenizer: Tokenizer, limit: int) -> list[str]:
    """Consecutive lines joined up to ``limit`` tokens a piece (a longer line is cut)."""
    parts: list[str] = []
    current: list[str] = []
    for line in lines:
        for piece in split_tokens(line, tokenizer, limit) if line.strip() else [line]:
            if current and count_tokens(tokenizer, "\n".join([*current, piece])) > limit:
                parts.append("\n".join(current))
                current = []
            current.append(piece)
    if current:
        parts.append("\n".join(current))
    return parts


def split_units(
    text: str, tokenizer: Tokenizer, limit: int, level: int = 0
) -> list[tuple[str, str]]:
    """``(separator, piece)`` pairs of at most ``limit`` tokens, each piece as large as fits.

    Joining the pieces with their separators gives back ``text`` up to whitespace. Code
    blocks and definition entries are split only by ``split_block``.
    """
    if level == len(_LEVELS):
        return [(" ", piece) for piece in split_tokens(text, tokenizer, limit)]
    units: list[tuple[str, str]] = []
    parts = paragraphs(text) if level == 0 else split_keep(_LEVELS[level], text)
    for sep, part in parts:
        if count_tokens(tokenizer, part) <= limit:
            units.append((sep, part))
            continue
        # The first sub-piece joins the previous piece the way the whole part would have.
        if level == 0 and _is_block(part):
            sub = [("\n\n", p) for p in split_block(part, tokenizer, limit)]
        else:
            sub = split_units(part, tokenizer, limit, level + 1)
        units += [(sep, sub[0][1]), *sub[1:]]
    return units


def tail(text: str, tokenizer: Tokenizer, n_tokens: int) -> str:
    """About the last ``n_tokens`` tokens of ``text``, from a sentence start if one is near.

    A sentence start between half and twice the budget from the end wins (the one closest to
    the budget), so the next chunk opens with whole sentences; otherwise the tail starts at the
    first word boundary. The whole text is never a tail: it would add nothing.
    """
    offsets = tokenizer.encode(text, add_special_tokens=False).offsets
    total = len(offsets)
    if n_tokens <= 0 or total <= n_tokens:
        return ""
    token_starts = [start for start, _ in offsets]
    candidates = []
    for match in _SENTENCE_START.finditer(text):
        after = total - bisect.bisect_left(token_starts, match.end())
        if n_tokens // 2 <= after <= 2 * n_tokens and after < total:
            candidates.append((abs(after - n_tokens), match.end()))
    if candidates:
        return text[min(candidates)[1] :].strip()
    start = token_starts[total - n_tokens]
    if start > 0 and not text[start - 1].isspace() and not text[start].isspace():
        boundary = re.search(r"\s", text[start:])  # mid-word: move on to the next word
        if boundary is None:
            return ""
        start += boundary.start()
    return text[start:].strip()


def _join_with_overlap(
    previous: str, sep: str, text: str, tokenizer: Tokenizer, cfg: ChunkConfig
) -> str:
    """Start the next chunk with the end of ``previous``, shrinking the overlap until it fits.

    A chunk that ends in a code block or a definition entry lends no overlap: a tail of it
    would be a block cut in half.
    """
    if _is_block(paragraphs(previous)[-1][1]):
        return text
    budget = cfg.overlap_tokens
    while budget > 0:
        if overlap := tail(previous, tokenizer, budget):
            joined = f"{overlap}{sep}{text}"
            if count_tokens(tokenizer, joined) <= cfg.max_tokens:
                return joined
        budget -= max(1, cfg.overlap_tokens // 4)
    return text


def pack_units(
    units: Sequence[tuple[str, str]], tokenizer: Tokenizer, cfg: ChunkConfig
) -> list[str]:
    """Greedily fill chunks up to ``max_tokens``; each new chunk opens with the overlap."""
    chunks: list[str] = []
    current = ""
    for sep, text in units:
        candidate = f"{current}{sep}{text}" if current else text
        if not current or count_tokens(tokenizer, candidate) <= cfg.max_tokens:
            current = candidate
            continue
        chunks.append(current)
        current = _join_with_overlap(current, sep, text, tokenizer, cfg)
    if current:
        chunks.append(current)
    return chunks


def chunk_document(doc: Document, tokenizer: Tokenizer, cfg: ChunkConfig) -> list[Chunk]:
    """One document → its chunks in reading order; [] when it has no text outside headings."""
    chunks: list[Chunk] = []
    seen: set[str] = set()
    # Room for the overlap, so every piece can still open a chunk after its predecessor's tail.
    unit_limit = cfg.max_tokens - cfg.overlap_tokens
    for heading_path, body in split_sections(doc.text):
        units = split_units(body, tokenizer, unit_limit)
        for n, text in enumerate(pack_units(units, tokenizer, cfg)):
            chunk_id = "chunk-" + sha256_text(f"{doc.doc_id}\n{text}")
            if chunk_id in seen:
                continue
            seen.add(chunk_id)
            chunks.append(
                Chunk(
                    chunk_id=chunk_id,
                    doc_id=doc.doc_id,
                    source=doc.source,
                    index=len(chunks),
                    heading_path=list(heading_path),
                    text=text,
                    n_tokens=count_tokens(tokenizer, text),
                    text_hash=sha256_text(text),
                    section_start=n == 0,
                )
            )
    return chunks


def chunk_documents(
    docs: Sequence[Document], tokenizer: Tokenizer, cfg: ChunkConfig
) -> tuple[list[Chunk], list[Rejection]]:
    """All documents → chunks, plus a ``no_text`` rejection per document that yields none.

    At ``cfg.max_chunks`` the stage stops: the document that would cross the ceiling and every
    one after it are rejected as ``chunk_limit`` (documents are kept whole, never cut short).
    """
    chunks: list[Chunk] = []
    rejections: list[Rejection] = []
    for i, doc in enumerate(docs):
        produced = chunk_document(doc, tokenizer, cfg)
        if cfg.max_chunks is not None and len(chunks) + len(produced) > cfg.max_chunks:
            rejections += [_over_limit(d, len(chunks), cfg.max_chunks) for d in docs[i:]]
            break
        if produced:
            chunks += produced
            continue
        rejections.append(
            Rejection(
                record_id=doc.doc_id,
                stage=STAGE,
                reason="no_text",
                detail=f"{doc.source}: no text outside headings",
                record={"doc_id": doc.doc_id, "source": doc.source, "title": doc.title},
            )
        )
    return chunks, rejections


def _over_limit(doc: Document, made: int, ceiling: int) -> Rejection:
    return Rejection(
        record_id=doc.doc_id,
        stage=STAGE,
        reason="chunk_limit",
        detail=f"{doc.source}: not chunked, chunk.max_chunks={ceiling} reached after {made} "
        "chunks; raise it or split the corpus",
        record={"doc_id": doc.doc_id, "source": doc.source, "title": doc.title},
    )


def load_tokenizer(tokenizer_file: str) -> Tokenizer:
    """A ``tokenizer.json`` with truncation and padding off, so counts are true lengths."""
    if not Path(tokenizer_file).is_file():
        raise FileNotFoundError(f"tokenizer file {tokenizer_file} not found (a tokenizer.json)")
    try:
        tokenizer = Tokenizer.from_file(tokenizer_file)
    except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
        raise ValueError(f"{tokenizer_file}: not a `tokenizers` JSON file: {exc}") from exc
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def keyed_params(params: dict[str, Any]) -> dict[str, Any]:
    """Task params with the tokenizer path replaced by its content hash.

    A tokenizer retrained in place changes every chunk; a moved one changes none.
    """
    keyed = {k: v for k, v in params.items() if k != "tokenizer_file"}
    keyed["tokenizer_hash"] = file_hash(Path(params["tokenizer_file"]))
    return keyed


@stage(STAGE, key_params=keyed_params)
def chunk(
    documents: StageOutput, cfg: ChunkConfig, tokenizer_file: str, workspace: str
) -> Computed:
    """Chunk the ingested documents; skipped when the same documents, config and tokenizer ran."""
    docs = documents.read("documents", Document)
    chunks, rejections = chunk_documents(docs, load_tokenizer(tokenizer_file), cfg)
    n_out = len(docs) - len(rejections)
    counts = StageCounts.of(len(docs), n_out, rejections, produced=len(chunks))
    over = counts.rejected.get("chunk_limit", 0)
    stats = {
        "tokens": sum(c.n_tokens for c in chunks),
        "max_chunk_tokens": max((c.n_tokens for c in chunks), default=0),
        "docs_over_chunk_limit": over,
    }
    if over:  # the counts artifact shows it too; a warning makes the run log say it
        logger = get_run_logger() if in_prefect_run() else log
        logger.warning(
            "chunk.max_chunks=%s reached: %d of %d documents not chunked (rejected as chunk_limit)",
            cfg.max_chunks,
            over,
            len(docs),
        )
    return {"chunks": chunks, "rejections": rejections}, counts, stats
