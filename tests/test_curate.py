"""Curate rules on inline cases, the rule order, and the task entry point outside a flow."""

from __future__ import annotations

import pytest

from faqforge.config import CurateConfig
from faqforge.records import QAPair
from faqforge.stage import StageCounts, save_output
from faqforge.storage import Workspace
from tasks.curate import PASSAGE_REFERENCE, curate, curate_pairs

ANSWER = "Each chunk's answer is cached by its text hash and the prompt version."


def qa(question: str, answer: str = ANSWER, pid: str = "p1") -> QAPair:
    return QAPair(
        id=pid, question=question, answer=answer, doc_id="d1", chunk_id="c1",
        source="guide.md", prompt_version="v1", teacher="t",
    )  # fmt: skip


@pytest.mark.parametrize(
    "question",
    [
        "What does the passage say about caching?",  # "the passage": always referential
        "According to the text, what is a chunk?",  # attribution frame
        "What is described in this document?",  # "this document"
        "What does the document say about retries?",  # noun + saying verb
        "Based on the context, why are tasks cached?",
        "What is the main topic of the article?",  # "of the article" closing the question
        "Which tools are mentioned above?",
        "What does the above imply about caching?",
        "In this chapter, which stage runs first?",
        "What does the excerpt list as inputs?",
        "According to the author, why is dedup needed?",
        "What is mentioned in the text about retries?",
        "Which stages does the given text list?",
        "WHAT DO THE DOCUMENTS DESCRIBE?",  # case-insensitive, plural
    ],
)
def test_passage_reference_positives(question):
    assert PASSAGE_REFERENCE.search(question)
    assert curate_pairs([qa(question)], CurateConfig())[1][0].reason == "passage_reference"


@pytest.mark.parametrize(
    "question",
    [
        "How are documents ingested?",  # "documents" as the subject itself
        "What does the text stage do?",  # "the text" naming a stage, no saying verb
        "What does 'hash' mean in the context of caching?",  # idiom "in the context of"
        "How is a document's content hash computed?",
        "Which config section controls dedup?",
        "What is the context window of the student model?",
        "Why is this document-level grouping needed?",  # compound, not "this document"
        "What happens when the document text changes?",
        "How is plain text extracted from a PDF?",
        "What is the passage_reference rule?",  # identifier, not "the passage"
    ],
)
def test_passage_reference_negatives(question):
    assert not PASSAGE_REFERENCE.search(question)
    assert curate_pairs([qa(question)], CurateConfig())[0] == [qa(question)]


@pytest.mark.parametrize(
    ("question", "answer", "reason"),
    [
        ("How are answers cached?", "word " * 61, "answer_too_long"),  # 61 > 60 words
        ("How are answers cached?", "   ", "empty_answer"),
        ("Retries?", ANSWER, "question_too_short"),  # 1 < 3 words
        ("Tasks are cached by input.", ANSWER, "not_a_question"),  # no '?', no interrogative
        ("What does the passage say?", "", "passage_reference"),  # first failing rule wins
        ("Why?", "", "empty_answer"),  # empty answer is checked before question length
    ],
)
def test_rules_and_order(question, answer, reason):
    kept, rejected = curate_pairs([qa(question, answer)], CurateConfig())
    assert kept == []
    assert rejected[0].reason == reason
    assert rejected[0].record_id == "p1"
    assert rejected[0].record["question"] == question


@pytest.mark.parametrize(
    "question",
    [
        "How are answers cached?",
        "Explain how answers are cached?",  # imperative, but marked as a question
        "Is the teacher called for unchanged chunks",  # auxiliary opening, no '?'
        "word " * 60 + "?",  # curate sets no upper bound on questions
    ],
)
def test_kept(question):
    assert curate_pairs([qa(question, "word " * 60)], CurateConfig())[0] != []


def test_limits_come_from_config():
    cfg = CurateConfig(max_answer_words=5, min_question_words=5)
    _, rejected = curate_pairs([qa("How are answers cached?", "one two three four five six")], cfg)
    assert rejected[0].reason == "answer_too_long"
    _, rejected = curate_pairs([qa("How are answers cached?", "one")], cfg)
    assert rejected[0].reason == "question_too_short"


def test_task_fn_writes_output_and_counts(tmp_path):
    ws = Workspace(tmp_path)
    pairs = [qa("How are answers cached?", pid="a"), qa("What does the passage say?", pid="b")]
    upstream = save_output(ws, "generate", "k1", {"pairs": pairs}, StageCounts.of(2, 2, []))
    out = curate.fn(upstream, CurateConfig(), str(tmp_path))
    assert [p.id for p in out.read("pairs", QAPair)] == ["a"]
    assert out.counts.as_dict() == {"in": 2, "out": 1, "rejected": {"passage_reference": 1}}
    assert curate.fn(upstream, CurateConfig(), str(tmp_path)) == out  # finished: reused
