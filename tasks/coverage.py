"""Coverage of the corpus by curated pairs: which parts of the documents the dataset teaches.

The seed recipe failed because each concept had about one pair; this report makes that
visible per run. A heading (a chunk's heading path within its document) stands for a concept.
Reported: pairs per heading, phrasings per fact (``phrasing_counts``; dedup reports them
again after it), per document the share of its definition entries (options, variables,
functions) named by a kept question and of its headings with a kept pair, chunks and
documents left with zero pairs (and why: the teacher wrote none, or curate rejected all of
them), and a summary for the dataset manifest.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from typing import Any

from faqforge.records import Chunk, QAPair, Rejection
from faqforge.structure import CONTINUED, blocks
from faqforge.teachers.extractive import aliases, term_kind
from tasks.text import normalise

HeadingKey = tuple[str, tuple[str, ...]]  # (source, heading path)


def phrasing_counts(pairs: list[QAPair]) -> dict[str, Any]:
    """How many ways each fact is asked: one phrasing per fact is the write-up's failure.

    ``{"facts": n, "phrasings_per_fact_median": m, "facts_with_one_phrasing": k}``; pairs
    without a ``fact_id`` are each their own fact.
    """
    per_fact = Counter(p.fact_id or p.id for p in pairs)
    counts = list(per_fact.values())
    return {
        "facts": len(counts),
        "phrasings_per_fact_median": statistics.median(counts) if counts else 0,
        "facts_with_one_phrasing": sum(n == 1 for n in counts),
    }


def heading_label(path: list[str] | tuple[str, ...]) -> str:
    """``["Config", "Secrets"]`` → ``"Config > Secrets"``; a document's preamble is ``"(top)"``."""
    return " > ".join(path) or "(top)"


def heading_rows(chunks: list[Chunk], kept: list[QAPair]) -> list[dict[str, Any]]:
    """One row per heading of every chunk: its chunks and curated pairs, fewest pairs first."""
    n_chunks: Counter[HeadingKey] = Counter((c.source, tuple(c.heading_path)) for c in chunks)
    n_pairs: Counter[HeadingKey] = Counter((p.source, tuple(p.heading_path)) for p in kept)
    rows = [
        {
            "source": s,
            "heading": heading_label(h),
            "chunks": n_chunks[(s, h)],
            "pairs": n_pairs[(s, h)],
        }
        for s, h in sorted(n_chunks.keys() | n_pairs.keys())
    ]
    return sorted(rows, key=lambda r: r["pairs"])


def uncovered_chunks(
    chunks: list[Chunk], generated: list[QAPair], kept: list[QAPair], rejected: list[Rejection]
) -> list[dict[str, Any]]:
    """Chunks with zero curated pairs, each with what the teacher wrote and why it was dropped."""
    have = {p.chunk_id for p in kept}
    written = Counter(p.chunk_id for p in generated)
    reasons: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for r in rejected:
        reasons[r.record.get("chunk_id", "")][r.reason] += 1
    return [
        {
            "chunk_id": c.chunk_id,
            "doc_id": c.doc_id,
            "source": c.source,
            "heading": heading_label(c.heading_path),
            "generated": written[c.chunk_id],
            "rejected": dict(reasons[c.chunk_id]),
        }
        for c in chunks
        if c.chunk_id not in have
    ]


def summary(
    chunks: list[Chunk],
    kept: list[QAPair],
    headings: list[dict[str, Any]],
    uncovered: list[dict[str, Any]],
) -> dict[str, Any]:
    """The numbers a manifest reader needs: what is uncovered, and how thin the coverage is."""
    sources = sorted({c.source for c in chunks})
    covered = {p.source for p in kept}
    per_heading = [r["pairs"] for r in headings]
    return {
        "documents": len(sources),
        "documents_without_pairs": [s for s in sources if s not in covered],
        "chunks": len(chunks),
        "chunks_without_pairs": len(uncovered),
        "headings": len(headings),
        "headings_without_pairs": sum(n == 0 for n in per_heading),
        "headings_with_one_pair": sum(n == 1 for n in per_heading),
        "pairs_per_heading_median": statistics.median(per_heading) if per_heading else 0,
        **phrasing_counts(kept),
    }


def entry_terms(chunks: list[Chunk]) -> dict[str, list[str]]:
    """Source → the terms of its definition entries (options, variables, functions), in order."""
    terms: dict[str, list[str]] = defaultdict(list)
    for c in chunks:
        for block in blocks(c.text):
            term = block.term.removesuffix(CONTINUED)
            if block.kind == "definition" and term not in terms[c.source]:
                terms[c.source].append(term)
    return terms


def names_term(question: str, term: str) -> bool:
    """Whether a question names an entry's term or one of its aliases ("-i, --interactive")."""
    asked = f" {normalise(question)} "
    return any(f" {normalise(a)} " in asked for a in aliases(term) if normalise(a))


def global_name(term: str) -> bool:
    """A configuration or environment variable, or a function, names one thing wherever it is
    documented; an option or an argument belongs to its page's command."""
    return term_kind(term) in ("config", "env", "callable")


def document_rows(chunks: list[Chunk], kept: list[QAPair]) -> list[dict[str, Any]]:
    """Per document: its definition entries and headings, and the share named or covered by
    at least one kept pair (an entry counts when a question names its term: a question of its
    own page, or of any page for a global name such as ``pull.rebase``, which dedup keeps
    once where two pages document it alike)."""
    questions: dict[str, list[str]] = defaultdict(list)
    for p in kept:
        questions[p.source].append(p.question)
    everywhere = [p.question for p in kept]
    headings = heading_rows(chunks, kept)
    entries = entry_terms(chunks)
    rows = []
    for source in sorted({c.source for c in chunks}):
        terms = entries.get(source, [])
        covered = [
            t
            for t in terms
            if any(names_term(q, t) for q in (everywhere if global_name(t) else questions[source]))
        ]
        mine = [h for h in headings if h["source"] == source]
        rows.append(
            {
                "source": source,
                "entries": len(terms),
                "entries_covered": len(covered),
                "entries_uncovered": [t for t in terms if t not in covered][:20],
                "headings": len(mine),
                "headings_covered": sum(h["pairs"] > 0 for h in mine),
            }
        )
    return rows


def coverage_report(
    chunks: list[Chunk], generated: list[QAPair], kept: list[QAPair], rejected: list[Rejection]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """``(per-heading rows, uncovered chunk rows, per-document rows, summary)`` for curate's
    outputs and the manifest."""
    headings = heading_rows(chunks, kept)
    uncovered = uncovered_chunks(chunks, generated, kept, rejected)
    documents = document_rows(chunks, kept)
    report = summary(chunks, kept, headings, uncovered)
    entries = sum(r["entries"] for r in documents)
    report["definition_entries"] = entries
    report["definition_entries_covered"] = sum(r["entries_covered"] for r in documents)
    return headings, uncovered, documents, report
