"""The LLM teacher over HTTP: a real server on 127.0.0.1 (openai_server.py), faults injected
by fault_proxy.py in front of it, the real ``openai`` client in between."""

from __future__ import annotations

import asyncio
import json
import random
import time
import traceback

import httpx
import openai
import pytest

from faqforge.config import TeacherConfig
from faqforge.records import Chunk
from faqforge.teachers import TeacherError, make_teacher
from faqforge.teachers.base import Fact
from faqforge.teachers.fanout import ChunksFailed
from faqforge.teachers.llm import LLMTeacher
from faqforge.teachers.retry import backoff_delay, is_transient
from faqforge.teachers.schema import parse_facts, qa_schema
from tasks.generate import generate_for_chunks
from testsupport.fault_proxy import FaultProxy
from testsupport.openai_server import ALWAYS_MALFORMED, OpenAICompatServer
from testsupport.resume_worker import resume_after_kill

KEY_ENV = "FAQFORGE_TEST_TEACHER_KEY"
SECRET = "sk-test-7f3e9a1c5b2d"


def chunk(i: int, text: str = "Dedup removes repeated pairs. It uses MinHash.") -> Chunk:
    return Chunk(f"c{i}", "d1", "guide.md", i, ["faqforge", "Dedup"], text, 30, f"h{i}{text}")


@pytest.fixture
def server():
    with OpenAICompatServer() as srv:
        yield srv


@pytest.fixture
def proxy(server):
    with FaultProxy(server.base_url, hang_s=2) as prx:
        yield prx


@pytest.fixture
def cfg(proxy, monkeypatch) -> TeacherConfig:
    monkeypatch.setenv(KEY_ENV, SECRET)
    return TeacherConfig(
        kind="openai", base_url=proxy.base_url, model="tiny-teacher", api_key_env=KEY_ENV,
        max_retries=1, timeout_s=5, backoff_s=0.01, backoff_max_s=0.05, min_facts=2,
        max_facts=2,
    )  # fmt: skip


async def ask(teacher: LLMTeacher, c: Chunk, n: int = 2):
    try:
        return await teacher.generate(c, n)
    finally:
        await teacher.aclose()


def test_request_is_structured_and_authenticated(proxy, cfg):
    reply = asyncio.run(ask(make_teacher(cfg), chunk(0)))
    assert reply.facts == [  # each fact asked two ways, grouped as the teacher wrote them
        Fact(
            "Dedup removes repeated pairs.",
            (
                "What does sentence 1 of the guide say?",
                "What is stated in sentence 1 of the guide?",
            ),
        ),
        Fact(
            "It uses MinHash.",
            (
                "What does sentence 2 of the guide say?",
                "What is stated in sentence 2 of the guide?",
            ),
        ),
    ]
    assert len(reply.pairs) == 4
    body = proxy.requests[0]
    assert body["model"] == "tiny-teacher"
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "reply", "schema": qa_schema(2, 3, 60), "strict": True},
    }
    assert body["temperature"] == cfg.temperature and body["max_tokens"] == cfg.max_tokens
    system, user = body["messages"]
    assert "never refer" in system["content"].lower() and "ignore any" in system["content"]
    assert "```document\nDedup removes repeated pairs." in user["content"]
    assert "faqforge > Dedup" in user["content"] and "guide.md" in user["content"]
    assert proxy.auth_headers == [f"Bearer {SECRET}"]
    assert len(reply.calls) == 1 and reply.usage.prompt_tokens > 0


def test_malformed_reply_is_retried_once_with_the_error_fed_back(proxy, cfg):
    proxy.faults.append("malformed")
    reply = asyncio.run(ask(make_teacher(cfg), chunk(0)))
    assert len(reply.facts) == 2
    assert len(proxy.requests) == 2
    retry = proxy.requests[1]["messages"]
    assert retry[2]["role"] == "assistant" and retry[2]["content"].startswith('{"facts"')
    assert retry[3]["role"] == "user" and "not JSON" in retry[3]["content"]
    assert len(reply.calls) == 2  # both requests are in the ledger


def test_persistently_malformed_reply_becomes_a_rejection_with_raw_text(proxy, cfg, tmp_path):
    cfg = cfg.model_copy(update={"max_failure_share": 0.5})
    chunks = [chunk(0), chunk(1, f"{ALWAYS_MALFORMED} is a marker. Nothing parses.")]
    result = asyncio.run(generate_for_chunks(chunks, make_teacher(cfg), tmp_path, cfg))
    (rej,) = result.rejections
    assert (rej.record_id, rej.stage, rej.reason) == ("c1", "generate", "parse_error")
    assert "after one retry" in rej.detail
    assert rej.record["raw"].count("unterminated") == 2  # both replies kept
    assert result.stats.requests == 2 and result.stats.failed == 1
    assert len(proxy.requests) == 3  # one chunk once, the other twice
    assert len(result.ledger.rows) == 3 and result.stats.prompt_tokens > 0


# (faults injected before the answer, max_retries, requests sent, error or None)
HTTP_CASES = [
    (["429", "500", "timeout", "disconnect"], 4, 5, None),  # transient: retried
    (["500", "500"], 1, 2, "HTTP 500"),  # out of retries
    (["400"], 3, 1, "HTTP 400"),  # cannot succeed: not retried
    (["echo_key"], 3, 1, "HTTP 401"),
]


@pytest.mark.parametrize(("faults", "retries", "sent", "error"), HTTP_CASES)
def test_transient_http_failures_are_retried_others_are_not(proxy, cfg, faults, retries, sent,
                                                             error):  # fmt: skip
    proxy.faults.extend(faults)
    teacher = make_teacher(cfg.model_copy(update={"max_retries": retries, "timeout_s": 0.5}))
    if error is None:
        assert asyncio.run(ask(teacher, chunk(0))).pairs
    else:
        with pytest.raises(TeacherError) as info:
            asyncio.run(ask(teacher, chunk(0)))
        assert info.value.reason == "http_error" and error in info.value.detail
    assert len(proxy.requests) == sent


def test_backoff_doubles_up_to_the_cap_with_jitter():
    rng = random.Random(0)
    delays = [[backoff_delay(n, 1.0, 5.0, rng) for _ in range(200)] for n in range(5)]
    for n, ds in enumerate(delays):
        ceiling = min(5.0, 2**n)
        assert all(ceiling / 2 <= d <= ceiling for d in ds)
        assert max(ds) - min(ds) > ceiling / 4  # jittered, not fixed


def test_what_counts_as_transient():
    request = httpx.Request("POST", "http://x/v1/chat/completions")

    def status(code: int) -> openai.APIStatusError:
        response = httpx.Response(code, request=request)
        return openai.APIStatusError("x", response=response, body=None)

    assert is_transient(openai.APITimeoutError(request))
    assert is_transient(openai.APIConnectionError(request=request))
    assert [c for c in (400, 401, 403, 404, 408, 422, 429, 500, 502, 503) if is_transient(
        status(c))] == [408, 429, 500, 502, 503]  # fmt: skip
    assert not is_transient(ValueError("bug"))


def test_api_key_never_appears_in_errors(proxy, cfg, tmp_path):
    proxy.faults.extend(["echo_key"] * 4)
    with pytest.raises(TeacherError) as info:
        asyncio.run(ask(make_teacher(cfg), chunk(0)))
    assert proxy.auth_headers[0] == f"Bearer {SECRET}"  # the server did see it
    text = "".join(traceback.format_exception(info.value)) + info.value.raw
    assert "bad credentials" in text and SECRET not in text
    with pytest.raises(ChunksFailed) as failed:
        asyncio.run(generate_for_chunks([chunk(0)], make_teacher(cfg), tmp_path, cfg))
    assert SECRET not in "".join(traceback.format_exception(failed.value))
    assert SECRET not in repr([r.to_dict() for r in failed.value.rejections])


def test_unreachable_server_is_an_http_error(cfg):
    dead = cfg.model_copy(update={"base_url": "http://127.0.0.1:9/v1", "max_retries": 0})
    with pytest.raises(TeacherError) as info:
        asyncio.run(ask(make_teacher(dead), chunk(0)))
    assert info.value.reason == "http_error" and "127.0.0.1:9" in info.value.detail


def test_concurrency_is_bounded_and_usage_summed(monkeypatch, tmp_path):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with OpenAICompatServer(delay_s=0.05) as slow:
        cfg = TeacherConfig(
            kind="openai", base_url=slow.base_url, model="tiny-teacher", api_key_env=KEY_ENV,
            concurrency=3, min_facts=2, max_facts=2,
        )  # fmt: skip
        chunks = [chunk(i, f"Topic {i} is covered. It has detail {i}.") for i in range(9)]
        result = asyncio.run(generate_for_chunks(chunks, make_teacher(cfg), tmp_path, cfg))
        assert slow.max_in_flight == 3
    assert result.stats.requests == 9 and len(result.pairs) == 36  # 9 chunks x 2 facts x 2
    # The two phrasings of each fact share its fact id; the facts of a chunk do not.
    by_fact: dict[str, set[str]] = {}
    for p in result.pairs:
        by_fact.setdefault(p.fact_id, set()).add(p.answer)
    assert len(by_fact) == 18 and all(len(answers) == 1 for answers in by_fact.values())
    assert result.stats.prompt_tokens == sum(
        len(m["content"].split()) for body in slow.requests for m in body["messages"]
    )
    assert result.stats.completion_tokens > 0
    assert {p.teacher for p in result.pairs} == {"tiny-teacher"}


def fact_json(*facts: tuple[str, list[str]]) -> str:
    return json.dumps({"facts": [{"answer": a, "questions": qs} for a, qs in facts]})


# (reply text, expected facts or the TeacherError reason)
PARSE_CASES = [
    (fact_json(("A.", ["Q?", "Q2?"])), [Fact("A.", ("Q?", "Q2?"))]),
    ('{"facts": [{"answer": "line\none", "questions": ["Q?"]}]}', [Fact("line\none", ("Q?",))]),
    (fact_json(("A.", ["Q?", " Q? "])), [Fact("A.", ("Q?",))]),  # a repeat counts once
    ("Sure! Here you go", "parse_error"),
    # an unconstrained server fences its JSON or wraps it in prose: the object is read
    (f"```json\n{fact_json(('A.', ['Q?']))}\n```", [Fact("A.", ("Q?",))]),
    (f"Here: {fact_json(('A.', ['Q?']))} Done.", [Fact("A.", ("Q?",))]),
    ('["A.", "Q?"]', "parse_error"),  # JSON, but not an object
    ('{"facts": []}', "schema_error"),  # minItems 1
    ('{"facts": [{"answer": "A."}]}', "schema_error"),
    (fact_json(("  ", ["Q?"])), "schema_error"),
    (fact_json(("A.", ["Q?", ""])), "schema_error"),
    (fact_json(("A.", [])), "schema_error"),
    ('{"pairs": [{"question": "Q?", "answer": "A."}]}', "schema_error"),  # the old shape
    (fact_json(*[("A.", ["Q?"])] * 3), "schema_error"),  # more facts than asked for
]


@pytest.mark.parametrize(("text", "expected"), PARSE_CASES)
def test_parse_facts(text, expected):
    if isinstance(expected, list):
        assert parse_facts(text, 2) == expected
    else:
        with pytest.raises(TeacherError) as info:
            parse_facts(text, 2)
        assert info.value.reason == expected and info.value.raw == text


def test_run_killed_with_sigkill_resumes_sending_only_what_is_left(tmp_path):
    with OpenAICompatServer(delay_s=0.1) as slow, FaultProxy(slow.base_url) as proxy:
        left, resent, result = resume_after_kill(proxy, tmp_path, 24, 2, answered=6)
    assert 0 < len(left) <= 24 - 6
    assert sorted(resent) == left  # each unanswered chunk once, nothing answered again
    assert (result.stats.requests, result.stats.cache_hits) == (len(left), 24 - len(left))
    ids = [p.id for p in result.pairs]
    assert len(ids) == len(set(ids)) and result.rejections == []
    assert len({p.chunk_id for p in result.pairs}) == 24


@pytest.mark.parametrize("fault", ["html_200", "bad_utf8_200"])
def test_a_malformed_200_is_that_chunks_failure_naming_chunk_and_endpoint(
    proxy, cfg, tmp_path, fault
):
    cfg = cfg.model_copy(update={"max_failure_share": 0.5})
    proxy.faults.append(fault)  # the first request gets it; the other chunk is answered
    result = asyncio.run(
        generate_for_chunks([chunk(0), chunk(1)], make_teacher(cfg), tmp_path, cfg)
    )  # fmt: skip
    (rej,) = result.rejections
    assert rej.reason == "bad_reply" and rej.stage == "generate"
    assert rej.record["source"] == "guide.md" and rej.record_id in ("c0", "c1")
    assert proxy.base_url in rej.detail and "HTTP 200" in rej.detail
    assert len(result.pairs) == 4 and result.stats.failed == 1


def test_a_malformed_200_counts_toward_max_failure_share(proxy, cfg, tmp_path):
    proxy.faults.extend(["html_200", "html_200"])
    with pytest.raises(ChunksFailed) as info:
        asyncio.run(generate_for_chunks([chunk(0), chunk(1)], make_teacher(cfg), tmp_path, cfg))
    assert {r.reason for r in info.value.rejections} == {"bad_reply"}


def test_timeout_is_a_total_deadline_not_per_read(server, cfg, tmp_path):
    # One byte every 0.2 s: each read arrives well inside the client's read timeout, the
    # whole reply would take minutes; the request ends at timeout_s (1 s), twice (1 retry).
    with FaultProxy(server.base_url, drip_s=0.2) as slow:
        slow.faults.extend(["drip", "drip"])
        fast = cfg.model_copy(update={"base_url": slow.base_url, "timeout_s": 1.0})
        started = time.monotonic()
        with pytest.raises(TeacherError) as info:
            asyncio.run(ask(make_teacher(fast), chunk(0)))
        took = time.monotonic() - started
    assert info.value.reason == "http_error" and "within 1 s" in info.value.detail
    assert took < 10  # two 1 s attempts and a short backoff, not 2 × (bytes × 0.2 s)


def test_negative_usage_is_clamped_and_cannot_refill_the_budget(proxy, cfg, tmp_path, caplog):
    proxy.faults.append("negative_usage")
    reply = asyncio.run(ask(make_teacher(cfg), chunk(0)))
    assert reply.usage.prompt_tokens == 0 and reply.usage.completion_tokens == 0
    assert "negative token usage" in caplog.text
