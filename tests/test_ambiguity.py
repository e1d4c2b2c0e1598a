"""Ambiguous questions: one question asked of several facts is repaired before dedup (the
extractive teacher names the context, an LLM teacher is asked), and what cannot be repaired is
rejected as ``ambiguous_question``, never dropped as a duplicate."""

from __future__ import annotations

from dataclasses import replace

import pytest

from faqforge.config import DedupConfig, TeacherConfig
from faqforge.records import QAPair
from faqforge.stage import StageCounts, save_output
from faqforge.storage import Workspace, iter_jsonl
from faqforge.teachers.repair import TeacherRepair, make_repair
from tasks.ambiguity import ContextRepair, ambiguous_groups, repair_ambiguous
from tasks.dedup import dedup, dedup_pairs
from testsupport.openai_server import OpenAICompatServer

Q = "What are variables in proxy settings?"


def pair(pid: str, answer: str, heading: list[str], source: str = "git-config.html") -> QAPair:
    return QAPair(
        id=pid, question=Q, answer=answer, doc_id=source, chunk_id=pid, source=source,
        prompt_version="v1", teacher="extractive", heading_path=heading, fact_id=f"f-{pid}",
    )  # fmt: skip


# The same question about three variables of one page, and a true duplicate of the first.
PAIRS = [
    pair("a", "The core.gitProxy variable names a proxy command.", ["git-config(1)", "core"]),
    pair("b", "The http.proxy variable sets the HTTP proxy to use.", ["git-config(1)", "http"]),
    pair("c", "The url.insteadOf variable rewrites remote URLs.", ["git-config(1)", "url"]),
    pair("d", "The core.gitProxy variable names a proxy command!", ["git-config(1)", "core"]),
]


def test_groups_are_questions_with_answers_that_disagree():
    assert ambiguous_groups(PAIRS) == [[0, 1, 2, 3]]
    assert ambiguous_groups([PAIRS[0], PAIRS[3]]) == []  # one answer: a plain duplicate


def test_context_repair_names_each_pairs_section():
    assert ContextRepair()(Q, PAIRS[:3]) == [
        "What are variables in proxy settings in core?",
        "What are variables in proxy settings in http?",
        "What are variables in proxy settings in url?",
    ]
    # The page subject when no specific heading is left, nothing when the question has it all.
    page_only = pair("e", "Text.", ["git-config(1) Manual Page", "OPTIONS"])
    assert ContextRepair()(Q, [page_only]) == [f"{Q[:-1]} in git-config?"]
    named = replace(page_only, source="git-config.html")
    assert ContextRepair()("What is git-config?", [named]) == [None]  # nothing left to name


def test_repair_keeps_every_fact_and_dedup_keeps_the_true_duplicate_out():
    fixed = repair_ambiguous(PAIRS, ContextRepair())
    (group,) = fixed.groups
    # a and d share their context (and answer): neither is renamed; b and c are.
    assert [r["from"] for r in group["repaired"]] == ["b", "c"] and group["unrepaired"] == 2
    renamed = {p.question for p in fixed.pairs}
    assert f"{Q[:-1]} in http?" in renamed and f"{Q[:-1]} in url?" in renamed
    assert fixed.pairs[1].id != "b" and fixed.pairs[1].fact_id == "f-b"  # new id, same fact
    kept, rejected = dedup_pairs(fixed.pairs, DedupConfig(semantic=False))
    assert len(kept) == 3  # every distinct answer survives
    assert [(r.record_id, r.reason) for r in rejected] == [("d", "exact_duplicate")]


def test_what_cannot_be_repaired_is_rejected_as_ambiguous_naming_the_kept_pair():
    same_place = [replace(p, heading_path=["git-config(1)", "core"]) for p in PAIRS[:2]]
    fixed = repair_ambiguous(same_place, ContextRepair())
    assert fixed.repaired == 0  # both would be "... in core?": no name tells them apart
    kept, rejected = dedup_pairs(fixed.pairs, DedupConfig(semantic=False))
    (rej,) = rejected
    assert (rej.reason, rej.record["duplicate_of"]) == ("ambiguous_question", kept[0].id)


def test_dedup_task_reports_groups_and_lost_answers(tmp_path):
    ws = Workspace(tmp_path)
    upstream = save_output(ws, "curate", "k", {"pairs": PAIRS}, StageCounts.of(4, 4, []))
    out = dedup.fn(upstream, DedupConfig(semantic=False), str(tmp_path))
    assert (out.stats["ambiguous_questions"], out.stats["repaired_pairs"]) == (1, 2)
    assert out.stats["distinct_answers_lost"] == 0
    (row,) = iter_jsonl(out.path("ambiguous"))
    assert row["question"] == Q and row["pairs"] == ["a", "b", "c", "d"]


@pytest.fixture
def teacher_repair(tmp_path, monkeypatch):
    monkeypatch.setenv("FAQFORGE_TEACHER_API_KEY", "sk-test")
    with OpenAICompatServer() as server:
        cfg = TeacherConfig(kind="openai", base_url=server.base_url, model="tiny-teacher")
        repair = make_repair(cfg, tmp_path / "cache")
        assert isinstance(repair, TeacherRepair)
        yield repair, server


def test_an_llm_teacher_is_asked_once_per_group_and_cached(teacher_repair):
    repair, server = teacher_repair
    fixed = repair_ambiguous(PAIRS[:3], repair)
    assert {p.question for p in fixed.pairs} == {
        f"{Q[:-1]} about The core.gitProxy variable?",
        f"{Q[:-1]} about The http.proxy variable?",
        f"{Q[:-1]} about The url.insteadOf variable?",
    }
    (request,) = server.requests
    assert '"headings": [' in request["messages"][1]["content"]  # each answer's context sent
    again = repair_ambiguous(PAIRS[:3], repair)
    assert again.pairs == fixed.pairs and len(server.requests) == 1  # from the cache
