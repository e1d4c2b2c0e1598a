"""Long stages say how far they are: log lines with done/total, counters and ETA, and a
Prefect progress artifact that reaches 100% inside a real run."""

from __future__ import annotations

import asyncio
import logging

from faqforge.progress import Progress, eta_text
from tasks.generate import generate_for_chunks
from testsupport.teaching import CFG, ScriptedTeacher, make_chunk


def test_eta_is_the_time_left_at_the_rate_so_far():
    assert eta_text(10.0, 5, 20) == "30s"
    assert eta_text(60.0, 1, 3) == "2m00s"
    assert eta_text(5.0, 0, 3) == "?" and eta_text(5.0, 3, 3) == "0s"


def test_off_a_terminal_progress_is_logged_with_counters(caplog):
    caplog.set_level(logging.INFO, logger="faqforge")
    with Progress("work", 4, "things", every_s=0.0) as p:
        for i in range(4):
            p.advance(1, failed=int(i == 2))
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("work: 1/4 things, failed 0;") and "ETA" in lines[0]
    assert lines[-1].startswith("work: 4/4 things, failed 1;")


def test_generate_reports_chunks_cache_hits_and_failures(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="faqforge")
    chunks = [make_chunk(i) for i in range(3)]
    asyncio.run(generate_for_chunks(chunks, ScriptedTeacher(), tmp_path, CFG))
    teacher = ScriptedTeacher(fail={chunks[0].chunk_id})
    asyncio.run(generate_for_chunks(chunks, teacher, tmp_path, CFG, force=True))
    done = [r.getMessage() for r in caplog.records if r.getMessage().startswith("generate: 3/3")]
    assert done[0].startswith("generate: 3/3 chunks, cache hits 0, failed 0;")
    assert done[1].startswith("generate: 3/3 chunks, cache hits 0, failed 1;")
    # One chunk changed: two answers come from the cache, one is asked again.
    again = [make_chunk(0, "A changed text about stage zero."), *chunks[1:]]
    asyncio.run(generate_for_chunks(again, ScriptedTeacher(), tmp_path, CFG))
    last = caplog.records[-1].getMessage()
    assert last.startswith("generate: 3/3 chunks, cache hits 2, failed 0")


def test_a_progress_artifact_is_updated_to_done_in_a_prefect_run(prefect_harness):
    from prefect import flow
    from prefect.client.orchestration import get_client

    @flow
    def counted() -> str:
        with Progress("count", 3, "steps", artifact_every_s=0.0) as p:
            for _ in range(3):
                p.advance()
        return str(p.artifact)

    from uuid import UUID

    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterId

    artifact_id = counted()
    by_id = ArtifactFilter(id=ArtifactFilterId(any_=[UUID(artifact_id)]))
    with get_client(sync_client=True) as client:  # by id: an unfiltered read stops at a limit
        (artifact,) = client.read_artifacts(artifact_filter=by_id)
    assert artifact.type == "progress" and artifact.data == 100.0
    assert artifact.description.startswith("count: 3/3 steps")
