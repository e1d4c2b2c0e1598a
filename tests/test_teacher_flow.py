"""Teacher features through the refresh flow and Prefect: judge wiring, ledger in the
manifest and as an artifact, retired chunks, and the shared global concurrency limit."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from faqforge.artifacts import artifact_key
from faqforge.config import TeacherConfig
from faqforge.storage import Workspace, iter_jsonl, read_json
from tasks.generate import generate
from testsupport.fault_proxy import FaultProxy
from testsupport.openai_server import OpenAICompatServer
from testsupport.teaching import chunk_stage, make_chunk

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent

TINY = "configs/tiny-llama_lora_cpu.yaml"  # the fast tests' student


@pytest.fixture
def judge_url():
    with OpenAICompatServer() as server, FaultProxy(server.base_url) as proxy:
        yield proxy


def test_judge_ledger_and_retired_chunks_through_the_flow(prefect_harness, monkeypatch,
                                                          tmp_path, judge_url):  # fmt: skip
    from prefect.artifacts import Artifact

    from flows.refresh import refresh

    monkeypatch.chdir(ROOT)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for path in sorted((ROOT / "faqforge" / "sample_corpus").glob("*.md"))[:4]:
        shutil.copy(path, corpus / path.name)
    overrides = ["teacher.judge.enabled=true", f"teacher.judge.base_url={judge_url.base_url}",
                 "teacher.judge.model=tiny-judge"]  # fmt: skip

    def run() -> dict:
        return refresh(TINY, overrides, str(corpus), str(tmp_path / "ws"))

    first = run()
    manifest = read_json(Path(first["dir"]) / "manifest.json")
    stages = manifest["stages"]
    assert (
        stages["judge"]["in"]
        == stages["generate"]["produced"]
        == len(judge_url.requests) * 0 + stages["judge"]["in"]
    )
    assert stages["curate"]["in"] == stages["judge"]["out"]
    train = list(iter_jsonl(Path(first["dir"]) / "train.jsonl"))
    assert train and all(row["score"] == 9.0 for row in train)
    ledger = manifest["teacher"]["ledger"]
    assert ledger["stages"]["judge"]["requests"] == len(judge_url.requests) > 0
    assert ledger["run"]["prompt_tokens"] == ledger["stages"]["judge"]["prompt_tokens"] > 0
    assert set(ledger["by_document"]) <= {p.name for p in corpus.iterdir()}
    table = str(Artifact.get(artifact_key("teacher-ledger", Workspace(tmp_path / "ws"))).data)
    assert "judge" in table and "document" in table

    # A document removed: its chunks are retired, nothing is asked again.
    gone = sorted(corpus.iterdir())[0]
    gone.unlink()
    sent = len(judge_url.requests)
    second = run()
    assert second["teacher"]["retired_chunks"] == stages["chunk"]["produced"] - read_json(
        Path(second["dir"]) / "manifest.json")["stages"]["chunk"]["produced"] > 0  # fmt: skip
    assert second["teacher"]["retired_pairs"] > 0 and second["teacher"]["requests"] == 0
    assert len(judge_url.requests) == sent
    rows = list(iter_jsonl(Path(second["dir"]) / "train.jsonl"))
    assert rows and gone.name not in {r["source"] for r in rows}
    # Its frozen eval items stay (verbatim, so scores stay comparable), now teaching nothing.
    evals = iter_jsonl(Path(second["dir"]) / "eval.jsonl")
    carried = [r for r in evals if r["source"] == gone.name]
    assert all(r["probe"] == "knowledge" and r["taught_by"] == [] for r in carried)


def test_global_concurrency_limit_is_shared_and_must_exist(prefect_harness, tmp_path):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    async def create() -> None:
        async with get_client() as client:
            await client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name="teacher-endpoint", limit=1)
            )

    asyncio.run(create())
    chunks = chunk_stage(Workspace(tmp_path), [make_chunk(i) for i in range(4)])
    with OpenAICompatServer(delay_s=0.2) as server:
        cfg = TeacherConfig(kind="openai", base_url=server.base_url, model="tiny-teacher",
                            concurrency=4, concurrency_limit="teacher-endpoint")  # fmt: skip

        @flow
        def one(cfg: TeacherConfig):
            return generate(chunks, cfg, str(tmp_path))

        assert one(cfg).stats["requests"] == 4
        assert server.max_in_flight == 1  # the limit, not teacher.concurrency, bounded it
        missing = cfg.model_copy(update={"concurrency_limit": "no-such-limit"})
        with pytest.raises(Exception, match="no-such-limit"):
            one(missing.model_copy(update={"model": "other"}))
