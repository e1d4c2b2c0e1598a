"""Error categories on commented answers, and their per-category counts with examples."""

from __future__ import annotations

import pytest

import tasks.evaluate.errors as ee

RULES = ee.ErrorRules(repetition_ngram=3, repetition_min_count=3, verbosity_ratio=2.0)
SOURCE = "Reports are kept under runs/<id>/eval. See https://docs.example.org/eval for more."


@pytest.mark.parametrize(
    ("answer", "reference", "truncated", "expected"),
    [
        ("Reports are kept under runs/<id>/eval.", "Under runs/<id>/eval.", False, set()),
        # the loop a small model falls into
        ("the run is the run is the run is done", "Done.", False, {"repetition", "verbosity"}),
        # twice is emphasis, not a loop
        ("the run is ok, the run is ok", "The run is ok.", False, set()),
        # 12 words against 2: verbose; 4 against 2 is not (fewer than 5 words more)
        ("It is kept in a folder that you can find in runs.", "In runs.", False, {"verbosity"}),
        ("It is in runs.", "In runs.", False, set()),
        ("I don't know where reports are kept.", "Reports are kept in runs.", False, {"refusal"}),
        ("I'm sorry, I cannot help with that.", "Reports are kept in runs.", False, {"refusal"}),
        # a link in the source chunk is grounded; one nowhere in source or reference is not
        ("See https://docs.example.org/eval.", "See the docs.", False, set()),
        ("See https://faqforge.io/reports.", "See the docs.", False, {"hallucinated_link"}),
        ("Open www.made-up.example now", "In runs.", False, {"hallucinated_link"}),
        ("Reports are kept", "In runs.", True, {"truncation"}),
    ],
)
def test_categorize(answer, reference, truncated, expected):
    assert set(ee.categorize(answer, reference, SOURCE, truncated, RULES)) == expected


def test_hallucinated_links_are_the_links_in_neither_source_nor_reference():
    assert ee.hallucinated_links("see https://ref.example/x.", "", "at https://ref.example/x") == []
    answer = "See https://x.io/a. And (www.y.org/b), or mail help@made-up.example"
    assert ee.hallucinated_links(answer, "www.Y.org/b/", "") == [
        "https://x.io/a",
        "help@made-up.example",
    ]


def test_repeated_ngram_reports_the_loop():
    assert ee.repeated_ngram("a b c a b c a b c", 3, 3) == "a b c"
    assert ee.repeated_ngram("a b", 3, 3) is None  # shorter than n


def test_summarize_counts_and_examples():
    flags = [{"refusal": "declines"}, {}, {"refusal": "declines", "truncation": "limit"}]
    out = ee.summarize(flags, ["q1", "q2", "q3"])
    assert out["refusal"]["count"] == 2 and out["refusal"]["rate"] == pytest.approx(2 / 3)
    assert [e["id"] for e in out["refusal"]["examples"]] == ["q1", "q3"]
    assert out["truncation"]["count"] == 1 and out["repetition"]["count"] == 0
    assert set(out) == set(ee.CATEGORIES)


@pytest.mark.parametrize("content", [b"[]", b"\xff\xfe garbage", b'{"half": '])
def test_a_damaged_eval_cache_entry_is_a_miss(tmp_path, content, caplog):
    from tasks.evaluate.cache import EvalCache

    cache = EvalCache(tmp_path)
    cache.put("answers", ["q"], {"text": "A."})
    assert cache.get("answers", ["q"]) == {"text": "A."}
    cache.path("answers", ["q"]).write_bytes(content)
    assert cache.get("answers", ["q"]) is None and cache.misses == 1
    assert "unreadable eval cache file" in caplog.text
