"""Decontaminate: 13-gram overlap with eval removes a training pair; short texts match whole."""

from __future__ import annotations

import pytest

from faqforge.config import DecontaminateConfig
from faqforge.records import QAPair
from faqforge.stage import StageCounts, save_output
from faqforge.storage import Workspace
from tasks.decontaminate import decontaminate, remove_eval_overlap

SENTENCE = "the teacher is only called for chunks whose text hash is not already in the cache"


def qa(pid: str, question: str, answer: str) -> QAPair:
    return QAPair(
        id=pid, question=question, answer=answer, doc_id=pid, chunk_id="c", source="s.md",
        prompt_version="v1", teacher="t",
    )  # fmt: skip


EVAL = [
    qa("e1", "When is the teacher called?", f"In short: {SENTENCE}."),
    qa("e2", "What is a chunk?", "A window."),  # 6 words: shorter than 13, one whole gram
]


@pytest.mark.parametrize(
    ("question", "answer", "eval_id"),
    [
        # 13 consecutive words of e1's answer (case and punctuation ignored)
        (
            "Why are reruns cheap?",
            "Because THE teacher is only called, for chunks whose text hash is not already",
            "e1",
        ),
        # the 13 words span question and answer: the text is the normalised "question answer"
        (
            "Is it true that the teacher is only called for chunks whose",
            "text hash is not already cached?",
            "e1",
        ),
        # a training text containing the whole of the short eval text e2
        ("Quick recap: what is a chunk?", "A window. Of a document.", "e2"),
    ],
)
def test_overlap_removed(question, answer, eval_id):
    kept, rejected = remove_eval_overlap([qa("t1", question, answer)], EVAL, DecontaminateConfig())
    assert kept == []
    (rej,) = rejected
    assert (rej.reason, rej.record_id, rej.record["eval_id"]) == ("eval_overlap", "t1", eval_id)
    assert eval_id in rej.detail


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        # 12 shared words: one short of the 13-gram
        (
            "Why are reruns cheap?",
            "Because the teacher is only called for chunks whose text hash is not",
        ),
        # same topic, different wording
        ("When does the pipeline call its teacher?", "Only for chunks missing from the cache."),
        # a short training text (8 words) that does not appear whole in any eval text
        ("Is the cache checked?", "Already in the cache."),
    ],
)
def test_no_false_removal(question, answer):
    train = [qa("t1", question, answer)]
    assert remove_eval_overlap(train, EVAL, DecontaminateConfig()) == (train, [])


def test_short_training_text_found_whole_in_eval():
    # "what is a chunk a window" (6 words) appears whole in e2, so it collides although < 13.
    (rej,) = remove_eval_overlap([qa("t1", "What is a chunk?", "A window!")], EVAL,
                                 DecontaminateConfig())[1]  # fmt: skip
    assert rej.record["eval_id"] == "e2"
    # A short training text found whole inside the longer e1 collides too.
    (rej,) = remove_eval_overlap([qa("t2", "Teacher is only called?", "For chunks.")], EVAL,
                                 DecontaminateConfig())[1]  # fmt: skip
    assert rej.record["eval_id"] == "e1"


def test_task_fn_passes_eval_through(tmp_path):
    ws = Workspace(tmp_path)
    train = [qa("t1", "Why are reruns cheap?", SENTENCE), qa("t2", "What is dedup?", "Removal.")]
    upstream = save_output(ws, "split", "k", {"train": train, "eval": EVAL},
                           StageCounts.of(4, 4, []))  # fmt: skip
    out = decontaminate.fn(upstream, DecontaminateConfig(), str(tmp_path))
    assert set(out.files) == {"train", "eval", "rejections"}
    assert [p.id for p in out.read("train", QAPair)] == ["t2"]
    assert out.read("eval", QAPair) == EVAL
    assert out.counts.as_dict() == {"in": 4, "out": 3, "rejected": {"eval_overlap": 1}}
