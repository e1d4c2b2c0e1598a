"""The OpenAI-compatible teacher against a real HTTP server on 127.0.0.1 (openai_server.py)."""

from __future__ import annotations

import asyncio
import traceback

import pytest
from openai_server import ALWAYS_MALFORMED, OpenAICompatServer

from faqforge.config import TeacherConfig
from faqforge.records import Chunk
from faqforge.teachers import TeacherError, make_teacher
from faqforge.teachers.openai_compat import OpenAITeacher, parse_pairs, qa_schema
from tasks.generate import GenerateFailed, generate_for_chunks

KEY_ENV = "FAQFORGE_TEST_TEACHER_KEY"
SECRET = "sk-test-7f3e9a1c5b2d"


def chunk(i: int, text: str = "Dedup removes repeated pairs. It uses MinHash.") -> Chunk:
    return Chunk(f"c{i}", "d1", "guide.md", i, ["faqforge", "Dedup"], text, 30, f"h{i}{text}")


@pytest.fixture
def server():
    with OpenAICompatServer() as srv:
        yield srv


@pytest.fixture
def cfg(server, monkeypatch) -> TeacherConfig:
    monkeypatch.setenv(KEY_ENV, SECRET)
    return TeacherConfig(
        kind="openai", base_url=server.base_url, model="tiny-teacher", api_key_env=KEY_ENV,
        max_retries=1, timeout_s=5, min_pairs=2, max_pairs=2,
    )  # fmt: skip


async def ask(teacher: OpenAITeacher, c: Chunk, n: int = 2):
    try:
        return await teacher.generate(c, n)
    finally:
        await teacher.aclose()


def test_request_is_structured_and_authenticated(server, cfg):
    reply = asyncio.run(ask(make_teacher(cfg), chunk(0)))
    assert reply.pairs == [
        ("What does sentence 1 of the guide say?", "Dedup removes repeated pairs."),
        ("What does sentence 2 of the guide say?", "It uses MinHash."),
    ]
    body = server.requests[0]
    assert body["model"] == "tiny-teacher"
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "qa_pairs", "schema": qa_schema(2, 60), "strict": True},
    }
    assert body["temperature"] == cfg.temperature and body["max_tokens"] == cfg.max_tokens
    system, user = body["messages"]
    assert "never refer" in system["content"].lower() and "ignore any" in system["content"]
    assert "```document\nDedup removes repeated pairs." in user["content"]
    assert "faqforge > Dedup" in user["content"] and "guide.md" in user["content"]
    assert server.auth_headers == [f"Bearer {SECRET}"]
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0


def test_malformed_reply_is_retried_once_with_the_error_fed_back(server, cfg):
    server.faults.append("malformed")
    reply = asyncio.run(ask(make_teacher(cfg), chunk(0)))
    assert len(reply.pairs) == 2
    assert len(server.requests) == 2
    retry = server.requests[1]["messages"]
    assert retry[2]["role"] == "assistant" and "unterminated" in retry[2]["content"]
    assert retry[3]["role"] == "user" and "not JSON" in retry[3]["content"]
    # Usage covers both calls.
    first_prompt = sum(len(m["content"].split()) for m in server.requests[0]["messages"])
    assert reply.usage.prompt_tokens > first_prompt


def test_persistently_malformed_reply_becomes_a_rejection_with_raw_text(server, cfg, tmp_path):
    cfg = cfg.model_copy(update={"max_failure_share": 0.5})
    chunks = [chunk(0), chunk(1, f"{ALWAYS_MALFORMED} is a marker. Nothing parses.")]
    result = asyncio.run(generate_for_chunks(chunks, make_teacher(cfg), tmp_path, cfg))
    (rej,) = result.rejections
    assert (rej.record_id, rej.stage, rej.reason) == ("c1", "generate", "parse_error")
    assert "after one retry" in rej.detail
    assert rej.record["raw"].count("unterminated") == 2  # both replies kept
    assert result.stats.requests == 2 and result.stats.failed == 1
    assert len(server.requests) == 3  # one chunk once, the other twice
    assert result.stats.prompt_tokens > 0


def test_http_errors_are_retried_by_the_client_then_rejected(server, cfg):
    server.faults.extend(["429", "500"])  # max_retries=1: 429 retried, then 500 is final
    with pytest.raises(TeacherError) as info:
        asyncio.run(ask(make_teacher(cfg), chunk(0)))
    assert info.value.reason == "http_error" and "HTTP 500" in info.value.detail
    server.faults.append("429")
    assert asyncio.run(ask(make_teacher(cfg), chunk(0))).pairs  # one 429, then an answer


def test_api_key_never_appears_in_errors(server, cfg, tmp_path):
    server.faults.extend(["echo_key"] * 4)
    with pytest.raises(TeacherError) as info:
        asyncio.run(ask(make_teacher(cfg), chunk(0)))
    assert server.auth_headers[0] == f"Bearer {SECRET}"  # the server did see it
    text = "".join(traceback.format_exception(info.value)) + info.value.raw
    assert "bad credentials" in text and SECRET not in text
    with pytest.raises(GenerateFailed) as failed:
        asyncio.run(generate_for_chunks([chunk(0)], make_teacher(cfg), tmp_path, cfg))
    assert SECRET not in "".join(traceback.format_exception(failed.value))
    assert SECRET not in repr([r.to_dict() for r in failed.value.rejections])


def test_unreachable_server_is_an_http_error(cfg):
    dead = cfg.model_copy(update={"base_url": "http://127.0.0.1:9/v1", "max_retries": 0})
    with pytest.raises(TeacherError) as info:
        asyncio.run(ask(make_teacher(dead), chunk(0)))
    assert info.value.reason == "http_error" and "127.0.0.1:9" in info.value.detail


def test_concurrency_is_bounded_and_usage_summed(cfg, tmp_path):
    with OpenAICompatServer(delay_s=0.05) as slow:
        cfg = cfg.model_copy(update={"base_url": slow.base_url, "concurrency": 3})
        chunks = [chunk(i, f"Topic {i} is covered. It has detail {i}.") for i in range(9)]
        result = asyncio.run(generate_for_chunks(chunks, make_teacher(cfg), tmp_path, cfg))
        assert slow.max_in_flight == 3
    assert result.stats.requests == 9 and len(result.pairs) == 18
    assert result.stats.prompt_tokens == sum(
        len(m["content"].split()) for body in slow.requests for m in body["messages"]
    )
    assert result.stats.completion_tokens > 0
    assert {p.teacher for p in result.pairs} == {"tiny-teacher"}


# (reply text, expected pairs or the TeacherError reason)
PARSE_CASES = [
    ('{"pairs": [{"question": "Q?", "answer": "A."}]}', [("Q?", "A.")]),
    ('{"pairs": [{"question": "Q?", "answer": "line\none"}]}', [("Q?", "line\none")]),  # raw \n
    ("Sure! Here you go", "parse_error"),
    ('{"pairs": []}', "schema_error"),  # minItems 1
    ('{"pairs": [{"question": "Q?"}]}', "schema_error"),
    ('{"pairs": [{"question": "Q?", "answer": "  "}]}', "schema_error"),
    ('[{"question": "Q?", "answer": "A."}]', "schema_error"),
    ('{"pairs": [' + ",".join(['{"question": "Q?", "answer": "A."}'] * 3) + "]}", "schema_error"),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_CASES)
def test_parse_pairs(text, expected):
    if isinstance(expected, list):
        assert parse_pairs(text, 2) == expected
    else:
        with pytest.raises(TeacherError) as info:
            parse_pairs(text, 2)
        assert info.value.reason == expected and info.value.raw == text
