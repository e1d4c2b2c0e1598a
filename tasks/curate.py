"""Curate: drop generated QA pairs that would teach the student bad habits.

A FAQ model is asked questions with no passage in sight, so a question that leans on "the
passage" or "the text above" instead of naming its subject is useless as training data. Also
dropped: empty or over-long answers, too-short questions and statements posing as questions.
Rules run in a fixed order and the first one that fails names the reason. Not covered here:
language detection and teacher-as-judge scores.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

from prefect import task

from faqforge.config import CurateConfig
from faqforge.records import QAPair, Rejection
from faqforge.stage import StageCounts, StageOutput
from faqforge.tasking import run_stage, stage_cache_key_fn

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


def check_answer_length(pair: QAPair, cfg: CurateConfig) -> Verdict:
    """Fails answers over ``cfg.max_answer_words`` whitespace words: a FAQ answer is short."""
    return len(pair.answer.split()) <= cfg.max_answer_words, "answer_too_long"


def check_answer_present(pair: QAPair, cfg: CurateConfig) -> Verdict:
    """Fails blank answers (the teacher gave up on the question)."""
    return bool(pair.answer.strip()), "empty_answer"


def check_question_length(pair: QAPair, cfg: CurateConfig) -> Verdict:
    """Fails ``"Retries?"``: under ``cfg.min_question_words`` words cannot name a subject."""
    return len(pair.question.split()) >= cfg.min_question_words, "question_too_short"


def check_is_question(pair: QAPair, cfg: CurateConfig) -> Verdict:
    """Fails ``"Tasks are cached."``: no question mark and no interrogative first word."""
    tokens = pair.question.split()
    first = tokens[0].casefold().strip("\"'(") if tokens else ""
    return "?" in pair.question or first in _INTERROGATIVES, "not_a_question"


RULES: list[Callable[[QAPair, CurateConfig], Verdict]] = [
    check_passage_reference,
    check_answer_length,
    check_answer_present,
    check_question_length,
    check_is_question,
]


def first_failure(pair: QAPair, cfg: CurateConfig) -> str | None:
    """The reason of the first rule the pair fails, or None when it passes them all."""
    for rule in RULES:
        ok, reason = rule(pair, cfg)
        if not ok:
            return reason
    return None


def curate_pairs(pairs: list[QAPair], cfg: CurateConfig) -> tuple[list[QAPair], list[Rejection]]:
    """Split pairs into kept ones and rejections named after the first rule each one fails."""
    kept: list[QAPair] = []
    rejected: list[Rejection] = []
    for pair in pairs:
        failed = first_failure(pair, cfg)
        if failed is None:
            kept.append(pair)
        else:
            rejected.append(
                Rejection(
                    record_id=pair.id,
                    stage=STAGE,
                    reason=failed,
                    detail=f"question: {pair.question[:120]!r}",
                    record=pair.to_dict(),
                )
            )
    return kept, rejected


@task(
    name="curate",
    cache_key_fn=stage_cache_key_fn(STAGE, sys.modules[__name__]),
    persist_result=True,
    result_serializer="json",
)
def curate(pairs: StageOutput, cfg: CurateConfig, workspace: str) -> StageOutput:
    """Curated pairs (``pairs``) and why the others were dropped (``rejections``)."""

    def compute():
        items = pairs.read("pairs", QAPair)
        kept, rejected = curate_pairs(items, cfg)
        counts = StageCounts.of(len(items), len(kept), rejected)
        return {"pairs": kept, "rejections": rejected}, counts, {}

    params = {"pairs": pairs, "cfg": cfg, "workspace": workspace}
    return run_stage(STAGE, sys.modules[__name__], params, compute)
