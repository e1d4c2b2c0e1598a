"""The judge pass: ratings against the source chunk, threshold, cache, failures, budget."""

from __future__ import annotations

import pytest

from faqforge.config import ConfigError, JudgeConfig, TeacherConfig, load_config
from faqforge.teachers import TeacherError, make_backend
from faqforge.teachers.ledger import Budget
from faqforge.teachers.schema import Rating, parse_ratings
from tasks.judge import verdicts
from testsupport.judging import CHUNKS, PAIRS, config, pair, run


def test_low_rated_pairs_are_rejected_with_the_judges_reason(proxy, tmp_path):
    result = run(proxy, tmp_path)
    assert [(p.id, p.score) for p in result.kept] == [("qa-0", 9.0), ("qa-2", 9.0), ("qa-3", 9.0)]
    (rej,) = result.rejections
    assert (rej.record_id, rej.stage, rej.reason) == ("qa-1", "judge", "low_score")
    assert "score 2 < 7" in rej.detail and "states a wrong fact" in rej.detail
    assert rej.record["score"] == 2.0 and rej.record["answer"].startswith("WRONG")
    assert result.counts().as_dict() == {"in": 4, "out": 3, "rejected": {"low_score": 1}}
    # One request per chunk, the chunk text and every pair in it, a ratings schema.
    assert len(proxy.requests) == 3 and result.stats.requests == 3
    # Chunks are judged concurrently: find chunk 0's request rather than assume it came first.
    (first,) = [r for r in proxy.requests if CHUNKS[0].text in r["messages"][1]["content"]]
    user = first["messages"][1]["content"]
    assert "cheese" in user and "What is part 0?" in user
    schema = first["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["ratings"]["minItems"] == 2


def test_verdicts_are_cached_like_generation(proxy, tmp_path):
    first = run(proxy, tmp_path)
    sent = len(proxy.requests)
    second = run(proxy, tmp_path)
    assert len(proxy.requests) == sent and second.stats.cache_hits == 3
    assert second.kept == first.kept and second.rejections == first.rejections
    edited = [*PAIRS[:3], pair(3, 2, "A different fact.")]
    run(proxy, tmp_path, pairs=edited)
    assert len(proxy.requests) == sent + 1  # only the chunk whose pairs changed


def test_threshold_is_configurable(proxy, tmp_path):
    result = run(proxy, tmp_path, config(proxy, threshold=2))
    assert len(result.kept) == 4 and result.rejections == []


def test_failed_verdicts_reject_the_chunks_pairs_with_the_raw_reply(proxy, tmp_path):
    proxy.faults.extend(["malformed", "malformed"])
    cfg = config(proxy).model_copy(update={"max_failure_share": 0.5, "concurrency": 1})
    result = run(proxy, tmp_path, cfg)
    failed = [r for r in result.rejections if r.reason == "parse_error"]
    assert [r.record_id for r in failed] == ["qa-0", "qa-1"] and failed[0].record["raw"]
    assert result.stats.failed == 1 and len(result.kept) == 2


def test_budget_spent_by_generation_leaves_pairs_unjudged(proxy, tmp_path):
    cfg = config(proxy).model_copy(update={"token_budget": 100})
    result = run(proxy, tmp_path, cfg, budget=Budget(100, spent=100))
    assert proxy.requests == [] and result.stats.left == 3
    assert {r.reason for r in result.rejections} == {"budget_exhausted"}


# (reply, expected)
RATING_CASES = [
    ('{"ratings": [{"accuracy": 8, "relevance": 9, "clarity": 7, "usefulness": 10, '
     '"reason": "ok"}]}', [Rating(8, 9, 7, 10, "ok")]),
    ('{"ratings": [{"accuracy": 11, "relevance": 9, "clarity": 7, "usefulness": 10, '
     '"reason": "ok"}]}', "schema_error"),  # out of range
    ('{"ratings": []}', "schema_error"),  # one per pair
    ("not json", "parse_error"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), RATING_CASES)
def test_parse_ratings(text, expected):
    if isinstance(expected, list):
        assert parse_ratings(text, 1) == expected and expected[0].score == 7.0
    else:
        with pytest.raises(TeacherError) as info:
            parse_ratings(text, 1)
        assert info.value.reason == expected


def test_verdicts_keep_at_the_threshold():
    kept, dropped = verdicts(PAIRS[:2], [Rating(7, 7, 7, 7, "ok"), Rating(9, 6, 9, 9, "v")], 7)
    assert [p.id for p in kept] == ["qa-0"] and "relevance 6" in dropped[0].detail


def test_judge_needs_a_model():
    with pytest.raises(ConfigError, match=r"teacher\.judge\.enabled needs a model"):
        load_config(None, ["teacher.judge.enabled=true"], environ={})
    cfg = TeacherConfig(judge=JudgeConfig(enabled=True, base_url="http://j/v1", model="judge"))
    backend = make_backend(cfg, judge=True)
    assert (backend.base_url, backend.model) == ("http://j/v1", "judge")
