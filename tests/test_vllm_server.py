"""The teacher against a real vLLM server (tiny local Llama, CPU): the ``vllm`` tier.

One server per session (conftest ``vllm_server``); faults come only from fault_proxy.py in
front of it. The model's weights are random, so what it writes is noise, but the JSON it
writes is real: structured output (xgrammar) is what makes it parse.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from faqforge.teachers import make_teacher
from faqforge.teachers.schema import QUESTION_CHARS
from tasks.generate import generate_for_chunks
from testsupport.fault_proxy import FaultProxy
from testsupport.resume_worker import resume_after_kill, sample_chunks, worker_config

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def proxy(vllm_server):
    with FaultProxy(vllm_server.base_url, hang_s=3) as prx:
        yield prx


def run(proxy, chunks, cache_dir, concurrency=4, **fields):
    cfg = worker_config(proxy.base_url, concurrency).model_copy(update=fields)
    return asyncio.run(generate_for_chunks(chunks, make_teacher(cfg), cache_dir, cfg))


def test_structured_output_parses_and_usage_is_the_servers(proxy, tmp_path):
    chunks = sample_chunks(6)
    result = run(proxy, chunks, tmp_path)
    assert result.rejections == [] and result.stats.requests == 6 == len(proxy.requests)
    assert {p.chunk_id for p in result.pairs} == {c.chunk_id for c in chunks}
    assert all(0 < len(p.question) <= QUESTION_CHARS for p in result.pairs)
    assert proxy.requests[0]["response_format"]["type"] == "json_schema"
    rows = result.ledger.rows
    assert len(rows) == 6 and all(r.prompt_tokens > 100 and r.completion_tokens > 0 for r in rows)


def test_requests_run_concurrently_up_to_the_bound(vllm_server, tmp_path):
    # Each request is held 1 s before the server sees it, so the bound is reached however
    # fast the server answers (on a loaded machine the first reply could beat the eighth send).
    with FaultProxy(vllm_server.base_url, hold_s=1.0) as proxy:
        result = run(proxy, sample_chunks(16), tmp_path, concurrency=8)
    assert proxy.max_in_flight == 8
    assert result.stats.requests == 16 and result.rejections == []


def test_cache_prevents_sending_again(proxy, tmp_path):
    chunks = sample_chunks(5)
    first = run(proxy, chunks, tmp_path)
    sent = len(proxy.requests)
    second = run(proxy, chunks, tmp_path)
    assert len(proxy.requests) == sent and second.stats.requests == 0
    assert second.stats.cache_hits == 5 and second.pairs == first.pairs
    assert second.stats.prompt_tokens == 0


def test_run_killed_with_sigkill_resumes_with_only_what_is_left(proxy, tmp_path):
    left, resent, result = resume_after_kill(proxy, tmp_path, 16, 2, answered=4)
    assert 0 < len(left) <= 12
    assert sorted(resent) == left
    assert result.stats.cache_hits == 16 - len(left) and result.rejections == []
    ids = [p.id for p in result.pairs]
    assert len(ids) == len(set(ids)) and len({p.chunk_id for p in result.pairs}) == 16


def test_faults_in_front_of_the_real_server_are_survived(vllm_server, tmp_path):
    with FaultProxy(vllm_server.base_url, hang_s=15) as proxy:
        proxy.faults.extend(["500", "429", "timeout", "malformed"])
        result = run(proxy, sample_chunks(3), tmp_path, concurrency=1, timeout_s=8, backoff_s=0.01)
    assert result.rejections == [] and result.stats.requests == 3
    # 3 answers + 3 transient retries + 1 retry of the malformed reply with the error fed back
    assert len(proxy.requests) == 7
    feedback = [b for b in proxy.requests if len(b["messages"]) == 4]
    assert len(feedback) == 1 and "not usable" in feedback[0]["messages"][3]["content"]


def test_in_process_vllm_kind_batches_and_parses(tmp_path, vllm_python):
    """``teacher.kind: vllm`` end to end, in .venv-vllm where vLLM lives."""
    from faqforge.tiny_llama import build_tiny_llama
    from testsupport.local_vllm import vllm_env

    python = vllm_python
    model = build_tiny_llama(tmp_path / "model")
    env = {**vllm_env(tmp_path / "vllm-cache"), "PYTHONPATH": str(ROOT)}
    worker, out = ROOT / "testsupport" / "vllm_inprocess_worker.py", tmp_path / "out.json"
    done = subprocess.run([str(python), str(worker), str(model), "4", str(out)], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    # Parsed from real JSON: the one fact asked of each chunk, asked two ways (one, when a
    # random model repeats itself: repeats count once).
    assert all(len(facts) == 1 for facts in result["facts"])
    assert all(1 <= n <= 2 for facts in result["facts"] for n in facts)
    assert all(p > 100 and c > 0 for p, c in result["usage"])
    assert result["batches"] == [4]  # four concurrent chunks, one engine call
