"""Secrets: the teacher's API key never reaches logs, artifacts, workspace files, Prefect's
flow-run logs or an exception, even when the server echoes it back in an error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from testsupport.fault_proxy import FaultProxy
from testsupport.openai_server import OpenAICompatServer

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
SENTINEL = "sk-faqforge-SENTINEL-7f3a9c"

TINY = "configs/tiny-llama_lora_cpu.yaml"  # the fast tests' student


def files_holding(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def prefect_records_holding(secret: str, flow_run_ids: list) -> list[str]:
    """Every artifact and every flow/task-run log line of these flow runs that names it
    (read page by page: the API returns at most 200 at a time)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=5)  # logs are shipped in batches
    artifact_filter = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=flow_run_ids))
    log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=flow_run_ids))
    artifacts, logs = [], []
    with get_client(sync_client=True) as client:
        while page := client.read_artifacts(
            artifact_filter=artifact_filter, limit=200, offset=len(artifacts)
        ):
            artifacts += page
        while page := client.read_logs(log_filter=log_filter, limit=200, offset=len(logs)):
            logs += page
    assert artifacts and logs  # the check reads something
    assert {log.flow_run_id for log in logs} == set(flow_run_ids)  # both runs logged
    texts = [f"artifact {a.key}: {a.data} {a.description}" for a in artifacts]
    texts += [f"log {entry.name}: {entry.message}" for entry in logs]
    return [t for t in texts if secret in t]


def test_api_key_never_leaks(prefect_harness, monkeypatch, tmp_path, capfd, caplog):
    from flows.refresh import refresh

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("FAQFORGE_TEACHER_API_KEY", SENTINEL)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for path in sorted((ROOT / "faqforge" / "sample_corpus").glob("*.md"))[:3]:
        shutil.copy(path, corpus / path.name)

    with OpenAICompatServer() as server, FaultProxy(server.base_url) as proxy:
        teacher = ["teacher.kind=openai", f"teacher.base_url={proxy.base_url}",
                   "teacher.model=tiny-teacher", "teacher.backoff_s=0.01",
                   "teacher.max_failure_share=0.5",
                   # the fake teacher asks "sentence i" of every chunk: few facts survive dedup
                   "validate.min_knowledge_rows=0"]  # fmt: skip
        # A 401 that repeats the Authorization header, then transient errors to retry.
        proxy.faults.extend(["echo_key", "500", "429", "500", "echo_key"])
        done = refresh(TINY, teacher, str(corpus), str(tmp_path / "ws"), return_state=True)
        assert done.result()["rejected"] > 0  # the two 401s became rejections, logged and kept

        # Every request refused, echoing the key: the run fails; its error must not name it.
        proxy.faults.extend(["echo_key"] * 200)
        stopped = refresh(TINY, teacher, str(corpus), str(tmp_path / "ws-failed"),
                          return_state=True)  # fmt: skip
        with pytest.raises(Exception) as failed:
            stopped.result()
        assert all(auth == f"Bearer {SENTINEL}" for auth in proxy.auth_headers)  # it was sent

    assert "401" in str(failed.value) or "http_error" in str(failed.value)
    chain, exc = [], failed.value
    while exc is not None:
        chain.append(f"{type(exc).__name__}: {exc} {getattr(exc, 'args', '')}")
        exc = exc.__cause__ or exc.__context__
    assert not [c for c in chain if SENTINEL in c]
    assert files_holding(tmp_path, SENTINEL) == []
    captured = capfd.readouterr()
    assert SENTINEL not in captured.out + captured.err
    assert SENTINEL not in caplog.text
    runs = [done.state_details.flow_run_id, stopped.state_details.flow_run_id]
    assert prefect_records_holding(SENTINEL, runs) == []
