"""Curate: drop generated QA pairs that would teach the student bad habits.

A FAQ model is asked questions with no passage in sight, so a question that leans on "the
passage" or "the text above" instead of naming its subject is useless as training data. Also
dropped: empty, over-long, too-short or fragmentary answers (not a sentence, or a bare
heading), too-short questions, statements posing as questions,
answers that only repeat the question, pairs confidently in another language, and (per config)
boilerplate and PII-looking strings, which may instead be kept with a flag. Given the source
chunks, a pair naming a URL or e-mail address its chunk does not contain is dropped first
(``unsourced_link``, ``tasks/links.py``): a planted instruction the teacher obeyed. Rules run
in a fixed order and the first one that fails names the reason. With the chunks at hand the task
also writes a coverage report (``tasks/coverage.py``). Not covered here: teacher-as-judge scores.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any

from faqforge.artifacts import artifact_key, stage_workspace
from faqforge.config import CurateConfig, TeacherConfig
from faqforge.progress import Progress
from faqforge.records import Chunk, QAPair, Rejection
from faqforge.stage import StageCounts, StageOutput
from faqforge.storage import iter_jsonl
from faqforge.tasking import Computed, in_prefect_run, stage
from tasks import language, pii
from tasks.coverage import coverage_report
from tasks.links import unsourced_links
from tasks.text import normalise, words

STAGE = "curate"

# Nouns that, after "the", almost always point at the source passage.
_ALWAYS = r"(?:passage|excerpt|paragraph|snippet)s?"
# Nouns that may name a real subject ("the text stage", "a document's hash") and count only in
# a referential frame: "this …", "according to the …", "the … says", or closing the question.
_FRAMED = r"(?:text|document|article|context|section|chapter|content|material|passage|excerpt)s?"
_SAYS = (
    r"(?:say|says|said|state|states|stated|mention|mentions|mentioned|describe|describes|"
    r"described|discuss|discusses|discussed|explain|explains|explained|suggest|suggests|imply|"
    r"implies|indicate|indicates|note|notes|claim|claims|cover|covers|tell|tells|outline|"
    r"outlines|highlight|highlights|refer|refers)"
)
_END = r"(?![\w-])"  # "this document-level grouping" is not "this document"

PASSAGE_REFERENCE = re.compile(
    "|".join(
        [
            rf"\b(?:the|this|that|these|those)\s+{_ALWAYS}{_END}",
            rf"\b(?:this|that|these|those)\s+{_FRAMED}{_END}",
            rf"\bthe\s+(?:given|provided|above|following|preceding|previous|attached)\s+{_FRAMED}{_END}",
            rf"\b(?:according\s+to|based\s+on|as\s+per|per)\s+the\s+(?:{_FRAMED}|authors?){_END}",
            rf"\b(?:in|within|from)\s+the\s+(?:text|article|context)s?{_END}(?!\s+of\b)",
            rf"\bthe\s+(?:{_FRAMED}|authors?)\s+{_SAYS}\b",
            r"\b(?:mentioned|described|discussed|stated|listed|shown|noted|outlined|explained|"
            r"presented|referenced|cited)\s+(?:above|below|earlier|previously)\b",
            r"\bthe\s+above\b",
            r"\babove[-\s]mentioned\b",
            rf"\b(?:of|in|from|by|within)\s+the\s+{_FRAMED}\s*[?.!]*\s*$",
        ]
    ),
    re.IGNORECASE,
)
# Positives: "What does the passage say about caching?", "According to the text, what is a
# chunk?", "What is described in this document?", "Which tools are mentioned above?",
# "What is the main topic of the article?".
# Negatives: "How are documents ingested?", "What does the text stage do?", "What does
# 'hash' mean in the context of caching?", "Why is this document-level grouping needed?".

_INTERROGATIVES = frozenset(
    {
        *("what", "why", "how", "when", "where", "which", "who", "whom", "whose"),
        *("is", "are", "am", "was", "were", "can", "could", "do", "does", "did"),
        *("should", "would", "will", "shall", "may", "might", "must", "has", "have", "had"),
    }
)

Verdict = tuple[bool, str]


def check_passage_reference(pair: QAPair, cfg: CurateConfig) -> Verdict:
    """Fails ``"What does the passage say about caching?"``: its subject is never named."""
    return PASSAGE_REFERENCE.search(pair.question) is None, "passage_reference"


def check_answer_length(pair: QAPair, cfg: CurateConfig, max_words: int) -> Verdict:
    """Fails answers over ``max_words`` whitespace words or ``cfg.max_answer_chars``
    characters: a FAQ answer is short."""
    ok = len(pair.answer) <= cfg.max_answer_chars and len(pair.answer.split()) <= max_words
    return ok, "answer_too_long"


def check_question_max_length(pair: QAPair, cfg: CurateConfig) -> Verdict:
    """Fails questions over ``cfg.max_question_chars`` characters: a user asks in a line."""
    return len(pair.question) <= cfg.max_question_chars, "question_too_long"


def check_answer_present(pair: QAPair, cfg: CurateConfig) -> Verdict:
    """Fails blank answers (the teacher gave up on the question)."""
    return bool(pair.answer.strip()), "empty_answer"


# A sentence opens with a capital, a digit, a code span, a quote or a bracket, and ends with
# . ! or ? (then maybe a closing quote, bracket or code span).
_SENTENCE_START = re.compile(r"^[\"'“‘(\[`*_]*[A-Z0-9<$./%-]")
_SENTENCE_END = re.compile(r"[.!?][\"'’”)\]`*_]*$")


def check_answer_is_sentence(pair: QAPair, cfg: CurateConfig) -> Verdict:
    """Fails fragments: ``"the time zone is omitted when ..."`` (a cut clause), ``"Options:"``
    (a lead-in), ``"-"`` (a list bullet). A FAQ answer reads as whole sentences; one may open
    with a lower-case name ("faqforge runs ...", "git-clone clones ..."), not a common word."""
    answer = pair.answer.strip()
    first = answer.split()[0].lower().lstrip("\"'“‘(`*_") if answer.split() else ""
    opens = bool(_SENTENCE_START.match(answer)) or (
        first[:1].isalpha() and first not in _FUNCTION_WORDS
    )
    return opens and bool(_SENTENCE_END.search(answer)), "answer_not_sentence"


def check_answer_min_words(pair: QAPair, cfg: CurateConfig) -> Verdict:
    """Fails ``"Yes."`` and ``"See below."``: under ``cfg.min_answer_words`` words says nothing
    a user can act on."""
    return len(pair.answer.split()) >= cfg.min_answer_words, "answer_too_short"


def check_answer_not_heading(pair: QAPair, cfg: CurateConfig) -> Verdict:
    """Fails an answer that only repeats its page title or a heading ("Table of Contents",
    "git-rebase(1) Manual Page"): a label, not an answer."""
    answer = normalise(pair.answer)
    return all(answer != normalise(h) for h in pair.heading_path), "answer_is_heading"


def check_question_length(pair: QAPair, cfg: CurateConfig) -> Verdict:
    """Fails ``"Retries?"``: under ``cfg.min_question_words`` words cannot name a subject."""
    return len(pair.question.split()) >= cfg.min_question_words, "question_too_short"


def check_is_question(pair: QAPair, cfg: CurateConfig) -> Verdict:
    """Fails ``"Tasks are cached."``: no question mark and no interrogative first word."""
    tokens = pair.question.split()
    first = tokens[0].casefold().strip("\"'(") if tokens else ""
    return "?" in pair.question or first in _INTERROGATIVES, "not_a_question"


# Words that carry no subject: an answer made of the question's words plus these adds nothing.
_FUNCTION_WORDS = _INTERROGATIVES | frozenset(
    {
        *("a", "an", "the", "be", "been", "being", "it", "its", "this", "that", "these", "those"),
        *("of", "in", "on", "at", "to", "for", "by", "with", "from", "as", "about", "into"),
        *("and", "or", "but", "not", "no", "yes", "there", "here", "than", "then", "so", "if"),
        *("i", "you", "we", "they", "he", "she", "know", "tell", "explain", "me", "us"),
    }
)


def content_words(text: str) -> list[str]:
    """``"What is the dedup stage?"`` → ``["dedup", "stage"]``."""
    return [w for w in words(text) if w not in _FUNCTION_WORDS]


def check_answer_adds_something(pair: QAPair, cfg: CurateConfig) -> Verdict:
    """Fails ``"What is a rejection?"`` → ``"A rejection."``: the answer only echoes the question.

    The share of the answer's content words found in the question must stay under
    ``cfg.max_repeat_share``; an answer without content words (``"Yes."``) is not judged here.
    """
    answer = content_words(pair.answer)
    question = set(content_words(pair.question))
    repeated = sum(w in question for w in answer)
    return not answer or repeated / len(answer) < cfg.max_repeat_share, "answer_repeats_question"


def check_language(pair: QAPair, cfg: CurateConfig) -> Verdict:
    """Fails a pair confidently identified as none of ``cfg.languages`` (``[]``: no check)."""
    if not cfg.languages:
        return True, "wrong_language"
    lang, confidence = language.detect(f"{pair.question} {pair.answer}")
    return lang in cfg.languages or confidence < cfg.min_language_confidence, "wrong_language"


Rule = Callable[[QAPair, CurateConfig], Verdict]
# The word limit is the one the teacher is asked for (``teacher.max_answer_words``): one knob.
MAX_ANSWER_WORDS = TeacherConfig().max_answer_words


def rules(max_answer_words: int) -> list[Rule]:
    """The rules in the order they are tried; a pair is rejected for the first it fails."""
    return [
        check_passage_reference,
        partial(check_answer_length, max_words=max_answer_words),
        check_answer_present,
        check_answer_is_sentence,
        check_answer_min_words,
        check_answer_not_heading,
        check_question_length,
        check_question_max_length,
        check_is_question,
        check_answer_adds_something,
        check_language,
    ]


def screen(pair: QAPair, cfg: CurateConfig) -> dict[str, list[str]]:
    """What the boilerplate and PII screens found, by mode: ``{"reject": [...], "flag": [...]}``.

    Findings are named ``boilerplate`` or ``pii:<kind>`` (``email``, ``phone``, ``secret``).
    """
    text = f"{pair.question}\n{pair.answer}"
    found: dict[str, list[str]] = {"reject": [], "flag": []}
    if cfg.boilerplate != "off" and pii.has_boilerplate(text):
        found[cfg.boilerplate].append("boilerplate")
    if cfg.pii != "off":
        found[cfg.pii] += [f"pii:{kind}" for kind in pii.find_pii(text)]
    return found


def first_failure(pair: QAPair, cfg: CurateConfig, ordered: list[Rule]) -> str | None:
    """The reason of the first rule the pair fails, or None when it passes them all."""
    for rule in ordered:
        ok, reason = rule(pair, cfg)
        if not ok:
            return reason
    return None


# Rejections are published with the dataset: a runaway 1 MB answer is recorded cut.
RECORD_CHARS = 2000


def _clip(text: str) -> str:
    cut = len(text) - RECORD_CHARS
    return text if cut <= 0 else f"{text[:RECORD_CHARS]} …[{cut} more characters]"


def _rejection(pair: QAPair, reason: str, detail: str) -> Rejection:
    shown = replace(pair, question=_clip(pair.question), answer=_clip(pair.answer))
    return Rejection(
        record_id=pair.id, stage=STAGE, reason=reason, detail=detail, record=shown.to_dict()
    )


def redacted(pair: QAPair) -> QAPair:
    """The pair with PII-looking strings masked: rejections are published with the dataset."""
    return replace(pair, question=pii.redact(pair.question), answer=pii.redact(pair.answer))


def curate_pairs(
    pairs: list[QAPair],
    cfg: CurateConfig,
    sources: Mapping[str, str] | None = None,
    max_answer_words: int = MAX_ANSWER_WORDS,
) -> tuple[list[QAPair], list[Rejection]]:
    """Split pairs into kept ones and rejections named after the first rule each one fails.

    ``sources`` maps chunk ids to chunk text; with it, links missing from a pair's chunk
    reject the pair before any other rule (without it, as for a bare JSONL file, no link
    check is possible).

    Pairs that pass every rule are screened last: a finding in ``reject`` mode drops the pair
    (reason ``pii`` or ``boilerplate``), one in ``flag`` mode keeps it with ``flags`` set.
    With ``cfg.pii == "reject"`` every rejection's record is redacted.
    """
    ordered = rules(max_answer_words)
    if cfg.languages:
        language.check_codes(cfg.languages)
    kept: list[QAPair] = []
    rejected: list[Rejection] = []
    for pair in Progress("curate", len(pairs), "pairs").each(pairs):
        shown = redacted(pair) if cfg.pii == "reject" else pair
        if sources is not None and (
            links := unsourced_links(
                f"{pair.question}\n{pair.answer}", sources.get(pair.chunk_id, "")
            )
        ):
            detail = f"not in source chunk {pair.chunk_id}: {', '.join(links)}"
            rejected.append(_rejection(shown, "unsourced_link", detail))
            continue
        failed = first_failure(pair, cfg, ordered)
        if failed is not None:
            rejected.append(_rejection(shown, failed, f"question: {shown.question[:120]!r}"))
            continue
        found = screen(pair, cfg)
        if found["reject"]:
            reason = "pii" if any(f.startswith("pii:") for f in found["reject"]) else "boilerplate"
            rejected.append(_rejection(shown, reason, f"found: {', '.join(found['reject'])}"))
        elif found["flag"]:
            kept.append(replace(pair, flags=sorted({*pair.flags, *found["flag"]})))
        else:
            kept.append(pair)
    return kept, rejected


@stage(STAGE, after=lambda out, _params: publish_coverage_artifact(out))
def curate(
    pairs: StageOutput,
    cfg: CurateConfig,
    workspace: str,
    chunks: StageOutput | None = None,
    max_answer_words: int = MAX_ANSWER_WORDS,
) -> Computed:
    """Curated pairs (``pairs``), why the others were dropped (``rejections``) and, given the
    chunks, coverage per heading (``coverage``) and chunks left without pairs (``uncovered``).
    ``max_answer_words`` is the teacher's (``teacher.max_answer_words``)."""
    items = pairs.read("pairs", QAPair)
    source_chunks = chunks.read("chunks", Chunk) if chunks is not None else []
    sources = {c.chunk_id: c.text for c in source_chunks} if chunks is not None else None
    kept, rejected = curate_pairs(items, cfg, sources, max_answer_words)
    counts = StageCounts.of(len(items), len(kept), rejected)
    outputs: dict[str, Any] = {"pairs": kept, "rejections": rejected}
    stats: dict[str, Any] = {"flagged": dict(Counter(f for p in kept for f in p.flags))}
    if chunks is not None:
        report = coverage_report(source_chunks, items, kept, rejected)
        outputs["coverage"], outputs["uncovered"], outputs["documents"] = report[:3]
        stats["coverage"] = report[3]
    return outputs, counts, stats


def publish_coverage_artifact(out: StageOutput) -> None:
    """A table of curated pairs per heading, thinnest first, on the flow run."""
    if "coverage" not in out.files or not in_prefect_run():
        return
    from prefect.artifacts import create_table_artifact

    summary = out.stats["coverage"]
    create_table_artifact(
        key=artifact_key("curate-coverage", stage_workspace(out.dir)),
        table=list(iter_jsonl(out.path("coverage"))),
        description=(
            f"curated pairs per heading: {summary['headings_without_pairs']} of "
            f"{summary['headings']} headings and {summary['chunks_without_pairs']} of "
            f"{summary['chunks']} chunks have none; documents without pairs: "
            f"{summary['documents_without_pairs'] or 'none'}"
        ),
    )
