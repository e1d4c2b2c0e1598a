"""The generate stage: per-chunk cache, resume, failures and the Prefect task."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import replace

import pytest

from faqforge.artifacts import artifact_key
from faqforge.config import TeacherConfig
from faqforge.records import QAPair, Rejection
from faqforge.storage import Workspace
from faqforge.teachers import TeacherReply, Usage
from faqforge.teachers.base import Fact
from faqforge.teachers.cache import cache_path, generation_key
from faqforge.teachers.fanout import ChunksFailed, retry_if_transient
from faqforge.teachers.ledger import Budget
from tasks.generate import facts_for_chunk, generate, generate_for_chunks
from testsupport.teaching import CFG, ScriptedTeacher, cache_files, chunk_stage, make_chunk, run

# (n_tokens, config fields, facts asked for)
N_FACTS_CASES = [
    (0, {}, 1),  # never below min_facts
    (120, {}, 2),
    (256, {}, 4),  # 1.5 per 100 tokens
    (1000, {}, 6),  # never above max_facts
    (300, {"facts_per_100_tokens": 3.0, "max_facts": 10}, 9),
    (40, {"min_facts": 2}, 2),
]


@pytest.mark.parametrize(("n_tokens", "fields", "expected"), N_FACTS_CASES)
def test_facts_for_chunk(n_tokens, fields, expected):
    assert facts_for_chunk(n_tokens, TeacherConfig(**fields)) == expected


def test_second_run_sends_nothing(tmp_path):
    chunks = [make_chunk(i) for i in range(3)]
    first_teacher, second_teacher = ScriptedTeacher(), ScriptedTeacher()
    first = run(chunks, first_teacher, tmp_path)
    second = run(chunks, second_teacher, tmp_path)
    assert (first.stats.requests, first.stats.cache_hits) == (3, 0)
    assert (second.stats.requests, second.stats.cache_hits) == (0, 3)
    assert second_teacher.calls == [] and second_teacher.closed == 1
    assert second.pairs == first.pairs  # same records, same ids
    assert (second.stats.prompt_tokens, first.stats.prompt_tokens) == (0, 30)
    assert first.counts().as_dict() == {"in": 3, "out": 3, "rejected": {}, "produced": 6}


def test_cache_is_one_json_file_per_chunk(tmp_path):
    teacher = ScriptedTeacher()
    run([make_chunk(0)], teacher, tmp_path)
    key = generation_key(make_chunk(0), 2, teacher, CFG)
    (path,) = cache_files(tmp_path)
    assert path == cache_path(tmp_path, key) == tmp_path / key[:2] / f"{key}.json"
    data = json.loads(path.read_text())
    assert data["facts"][0]["questions"][0] == "What is Stage 0? (0)"
    assert data["calls"][0]["prompt_tokens"] == 10


def test_cache_key_follows_what_changes_the_answer():
    teacher, c = ScriptedTeacher(), make_chunk(0)
    key = generation_key(c, 2, teacher, CFG)
    assert generation_key(replace(c, chunk_id="other", source="moved.md"), 2, teacher, CFG) == key
    assert generation_key(c, 3, teacher, CFG) != key
    assert generation_key(replace(c, heading_path=["x"]), 2, teacher, CFG) != key
    assert generation_key(c, 2, teacher, CFG.model_copy(update={"temperature": 0.9})) != key
    base = CFG.model_copy(update={"kind": "openai"})
    for fast in ({"concurrency": 1}, {"token_budget": 5}, {"judge": {"enabled": True}}):
        other = TeacherConfig(**{**base.model_dump(), **fast})
        assert generation_key(c, 2, teacher, other) == generation_key(c, 2, teacher, base)
    teacher.schema = "s2"  # the reply schema changed
    assert generation_key(c, 2, teacher, CFG) != key
    teacher.schema = "s1"
    teacher.prompt_version = "v2"
    assert generation_key(c, 2, teacher, CFG) != key


def test_changed_chunk_is_the_only_one_sent(tmp_path):
    chunks = [make_chunk(i) for i in range(4)]
    run(chunks, ScriptedTeacher(), tmp_path)
    chunks[2] = make_chunk(2, "Stage 2 was rewritten. It now reads files.")
    teacher = ScriptedTeacher()
    result = run(chunks, teacher, tmp_path)
    assert teacher.calls == ["c2"]
    assert (result.stats.requests, result.stats.cache_hits) == (1, 3)


def test_run_killed_half_way_resumes_with_what_is_left(tmp_path):
    chunks = [make_chunk(i) for i in range(5)]
    cfg = CFG.model_copy(update={"concurrency": 1})
    with pytest.raises(RuntimeError, match="killed at c2"):
        run(chunks, ScriptedTeacher(crash={"c2"}), tmp_path, cfg)
    teacher = ScriptedTeacher()
    result = run(chunks, teacher, tmp_path, cfg)
    assert teacher.calls[0] == "c2" and not {"c0", "c1"} & set(teacher.calls)
    assert result.stats.requests + result.stats.cache_hits == 5 and result.stats.cache_hits >= 2


def test_failed_chunk_is_rejected_with_raw_text_and_retried_next_run(tmp_path):
    chunks = [make_chunk(i) for i in range(4)]
    first = run(chunks, ScriptedTeacher(fail={"c1"}), tmp_path)
    assert first.rejections == [
        Rejection(
            record_id="c1", stage="generate", reason="parse_error", detail="not JSON",
            record={"chunk_id": "c1", "source": "doc0.md", "raw": "garbage for c1"},
        )
    ]  # fmt: skip
    assert first.stats.failed == 1 and first.stats.prompt_tokens == 37  # failed tokens count
    assert first.counts().as_dict() == {
        "in": 4, "out": 3, "rejected": {"parse_error": 1}, "produced": 6,
    }  # fmt: skip
    teacher = ScriptedTeacher()
    second = run(chunks, teacher, tmp_path)
    assert teacher.calls == ["c1"] and second.rejections == []


def test_too_many_failures_fail_the_run_after_caching_the_rest(tmp_path):
    chunks = [make_chunk(i) for i in range(4)]
    cfg = CFG.model_copy(update={"max_failure_share": 0.2})
    with pytest.raises(ChunksFailed, match=r"1 of 4 chunks failed.*c3 \(doc1\.md\): not JSON"):
        run(chunks, ScriptedTeacher(fail={"c3"}), tmp_path, cfg)
    teacher = ScriptedTeacher()
    run(chunks, teacher, tmp_path, cfg)
    assert teacher.calls == ["c3"]


def test_empty_reply_is_a_rejection_not_a_silent_gap(tmp_path):
    teacher = ScriptedTeacher(empty={"c0"})
    result = run([make_chunk(0), make_chunk(1)], teacher, tmp_path)
    assert [(r.reason, r.record["raw"]) for r in result.rejections] == [
        ("no_pairs", '{"facts": []}')
    ]
    assert result.stats.failed == 0  # nothing to ask is an answer, not a failure
    # Cached like any answer: a re-run asks nothing and reports the same rejection.
    again = ScriptedTeacher(empty={"c0"})
    rerun = run([make_chunk(0), make_chunk(1)], again, tmp_path)
    assert again.calls == []
    assert [r.reason for r in rerun.rejections] == ["no_pairs"]


def test_pairs_carry_lineage_and_stable_ids(tmp_path):
    result = run([make_chunk(0)], ScriptedTeacher(), tmp_path / "a")
    again = run([make_chunk(0)], ScriptedTeacher(), tmp_path / "b")  # no shared cache
    assert [p.id for p in result.pairs] == [p.id for p in again.pairs]
    pair = result.pairs[0]
    assert pair.id.startswith("qa-") and len({p.id for p in result.pairs}) == 2
    assert (pair.doc_id, pair.chunk_id, pair.source) == ("d0", "c0", "doc0.md")
    assert (pair.teacher, pair.prompt_version, pair.heading_path) == (
        "scripted", "v1", ["faqforge", "Stage 0"],
    )  # fmt: skip


def test_duplicate_pairs_in_one_reply_are_kept_once_and_counted(tmp_path):
    class Repeating(ScriptedTeacher):
        async def generate(self, chunk, n_facts):
            return TeacherReply(facts=[Fact("A.", ("Q?",))] * 2, raw="")

    result = run([make_chunk(0)], Repeating(), tmp_path)
    assert len(result.pairs) == 1 and result.stats.duplicate_pairs == 1


def test_unreadable_cache_file_is_asked_again(tmp_path):
    run([make_chunk(0)], ScriptedTeacher(), tmp_path)
    (path,) = cache_files(tmp_path)
    path.write_text("{not json")
    teacher = ScriptedTeacher()
    assert run([make_chunk(0)], teacher, tmp_path).pairs and teacher.calls == ["c0"]


def test_only_http_failures_are_retried_by_the_task():
    def failed(reason: str) -> ChunksFailed:
        rej = Rejection("c0", "generate", reason, "x", {"chunk_id": "c0", "source": "a.md"})
        return ChunksFailed([rej], 1, CFG, "generate")

    class State:
        def __init__(self, data):
            self.data = data

    assert retry_if_transient(None, None, State(failed("http_error")))
    assert not retry_if_transient(None, None, State(failed("parse_error")))
    assert not retry_if_transient(None, None, State(ValueError("bug")))


def test_task_reports_this_runs_stats_and_reuses_its_folder(tmp_path):
    ws = Workspace(tmp_path)
    chunks = chunk_stage(ws, [make_chunk(i) for i in range(3)])
    first = generate.fn(chunks, CFG, str(tmp_path))
    second = generate.fn(chunks, CFG, str(tmp_path))
    assert first.stats["requests"] == 3 and first.stats["cache_hits"] == 0
    assert second.stats["requests"] == 0 and second.stats["cache_hits"] == 3
    assert second.stats["teacher"] == "extractive"
    assert (second.key, second.dir, second.hashes) == (first.key, first.dir, first.hashes)
    assert second.counts == first.counts and first.counts.in_ == 3
    pairs = second.read("pairs", QAPair)
    assert len(pairs) == first.counts.produced > 0
    assert second.read("rejections", Rejection) == []
    assert len(cache_files(ws.teacher_cache)) == 3


def test_task_runs_when_the_caller_already_runs_an_event_loop(tmp_path):
    chunks = chunk_stage(Workspace(tmp_path), [make_chunk(0)])

    async def caller():
        return generate.fn(chunks, CFG, str(tmp_path))

    assert asyncio.run(caller()).counts.out == 1


def test_new_answers_for_the_same_inputs_get_a_new_folder(tmp_path, monkeypatch):
    """A chunk that failed before and is answered now must not reuse the old output folder."""
    chunks = chunk_stage(Workspace(tmp_path), [make_chunk(0), make_chunk(1)])
    teachers = iter([ScriptedTeacher(fail={"c1"}), ScriptedTeacher()])
    monkeypatch.setattr("tasks.generate.make_teacher", lambda cfg: next(teachers))
    first = generate.fn(chunks, CFG, str(tmp_path))
    second = generate.fn(chunks, CFG, str(tmp_path))
    assert first.counts.rejected == {"parse_error": 1} and second.counts.rejected == {}
    assert second.key != first.key and second.stats["requests"] == 1
    assert len(second.read("pairs", QAPair)) == 4 and len(first.read("pairs", QAPair)) == 2


def test_failed_task_writes_no_output_and_logs_raw_replies(tmp_path, monkeypatch, caplog):
    chunks = chunk_stage(Workspace(tmp_path), [make_chunk(0)])
    monkeypatch.setattr("tasks.generate.make_teacher", lambda cfg: ScriptedTeacher(fail={"c0"}))
    with pytest.raises(ChunksFailed, match="1 of 1 chunks failed"), caplog.at_level("WARNING"):
        generate.fn(chunks, CFG, str(tmp_path))
    assert "garbage for c0" in caplog.text
    assert not (tmp_path / "stages" / "generate").exists()


@pytest.mark.slow
def test_task_inside_a_flow(prefect_harness, tmp_path):
    from prefect import flow
    from prefect.artifacts import Artifact

    chunks = chunk_stage(Workspace(tmp_path), [make_chunk(i) for i in range(2)])

    @flow
    def twice():
        return generate(chunks, CFG, str(tmp_path)), generate(chunks, CFG, str(tmp_path))

    first, second = twice()
    assert (first.stats["requests"], second.stats["requests"]) == (2, 0)
    assert second.stats["cache_hits"] == 2
    artifact = Artifact.get(artifact_key("generate-counts", Workspace(tmp_path)))
    assert artifact is not None and "cache_hits" in str(artifact.data)


def test_token_budget_stops_new_requests_and_reports_what_was_left(tmp_path):
    chunks = [make_chunk(i) for i in range(5)]
    cfg = CFG.model_copy(update={"concurrency": 1, "token_budget": 30})  # 15 per chunk
    teacher = ScriptedTeacher()
    result = run(chunks, teacher, tmp_path, cfg)
    assert teacher.calls == ["c0", "c1"] and result.stats.left == 3
    assert result.stats.failed == 0 and len(result.pairs) == 4  # published, not failed
    left = [r for r in result.rejections if r.reason == "budget_exhausted"]
    assert [r.record_id for r in left] == ["c2", "c3", "c4"]
    assert result.ledger.summary()["left"] == 3
    # The next run, with budget left over from nothing spent, sends only what was left.
    again = ScriptedTeacher()
    assert run(chunks, again, tmp_path, cfg).stats.left == 1 and again.calls == ["c2", "c3"]
    # A budget already spent (by generate, for the judge) sends nothing.
    none = ScriptedTeacher()
    run(chunks, none, tmp_path, cfg, budget=Budget(30, spent=30))
    assert none.calls == []


def test_ledger_has_one_row_per_request_summed_per_document(tmp_path):
    class RetryingTeacher(ScriptedTeacher):
        async def generate(self, chunk, n_facts):
            reply = await super().generate(chunk, n_facts)
            return TeacherReply(reply.facts, (Usage(4, 1), Usage(6, 2)), reply.raw)

    cfg = CFG.model_copy(update={"cost_per_mtok_prompt": 1e6, "cost_per_mtok_completion": 2e6})
    result = run([make_chunk(i) for i in range(3)], RetryingTeacher(fail={"c2"}), tmp_path, cfg)
    rows = result.ledger.rows
    assert [(r.chunk_id, r.attempt) for r in rows] == [("c0", 0), ("c0", 1), ("c1", 0),
                                                       ("c1", 1), ("c2", 0)]  # fmt: skip
    summary = result.ledger.summary()
    assert (summary["requests"], summary["prompt_tokens"], summary["completion_tokens"]) == (
        5, 27, 9,
    )  # fmt: skip
    assert summary["cost"] == 27 + 2 * 9
    assert summary["by_document"]["doc0.md"]["requests"] == 4  # c0, c1 are doc0
    assert summary["by_document"]["doc1.md"]["prompt_tokens"] == 7  # the failed c2 counts
    assert (result.stats.prompt_tokens, result.stats.completion_tokens) == (27, 9)


def test_vanished_chunks_are_retired_and_their_pairs_gone(tmp_path):
    chunks = [make_chunk(i) for i in range(4)]
    first = run(chunks, ScriptedTeacher(), tmp_path)
    assert (first.stats.retired_chunks, first.stats.retired_pairs) == (0, 0)
    # c3's document lost that section; c1 was edited (a new chunk id for new text).
    edited = replace(make_chunk(1, "Stage 1 now reads files."), chunk_id="c1-v2")
    second = run([chunks[0], edited, chunks[2]], ScriptedTeacher(), tmp_path)
    assert (second.stats.retired_chunks, second.stats.retired_pairs) == (2, 4)
    assert {p.chunk_id for p in second.pairs} == {"c0", "c1-v2", "c2"}
    assert second.stats.requests == 1  # only the edited chunk was sent
    # Cache entries stay: the section coming back costs nothing.
    teacher = ScriptedTeacher()
    assert run(chunks, teacher, tmp_path).stats.retired_chunks == 1 and teacher.calls == []


def test_each_request_holds_the_shared_slot(tmp_path):
    """Every teacher call happens inside the slot, and every slot is given back."""
    held, entered, outside = 0, 0, 0

    @contextlib.asynccontextmanager
    async def slot():
        nonlocal held, entered
        held += 1
        entered += 1
        try:
            yield
        finally:
            held -= 1

    class Counting(ScriptedTeacher):
        async def generate(self, chunk, n_facts):
            nonlocal outside
            outside += held == 0
            return await super().generate(chunk, n_facts)

    teacher = Counting()
    chunks = [make_chunk(i) for i in range(4)]
    asyncio.run(generate_for_chunks(chunks, teacher, tmp_path, CFG, slot=slot))
    assert len(teacher.calls) == 4 and entered == 4
    assert outside == 0 and held == 0
