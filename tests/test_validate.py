"""Validate: the suite loads, a good dataset passes, each kind of bad dataset fails by name."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from faqforge.config import ValidateConfig
from faqforge.records import QAPair
from faqforge.stage import StageCounts, save_output
from faqforge.storage import Workspace, read_json
from tasks.curate import PASSAGE_REFERENCE
from tasks.validate import (
    DatasetValidationError,
    load_suite,
    resolve_suite,
    validate,
    validate_dataset,
)

SUITE = resolve_suite(ValidateConfig().suite)  # the configured default, from any directory


def qa(pid: str, doc_id: str, **changes) -> QAPair:
    pair = QAPair(
        id=pid, question=f"How does stage {pid} handle retries?", answer="With backoff.",
        doc_id=doc_id, chunk_id="c", source=f"{doc_id}.md", prompt_version="v1", teacher="t",
    )  # fmt: skip
    return replace(pair, **changes)


TRAIN = [qa("t1", "d1"), qa("t2", "d1"), qa("t3", "d2")]
EVAL = [qa("e1", "d3")]


def test_suite_loads_and_mirrors_curate_rule():
    suite = load_suite(SUITE)
    assert suite.name == "qa_dataset" and len(suite.expectations) > 20
    regexes = [e["kwargs"]["regex"] for e in json.loads(SUITE.read_text())["expectations"]
               if e["type"] == "expect_column_values_to_not_match_regex"]  # fmt: skip
    assert regexes == ["(?i)" + PASSAGE_REFERENCE.pattern]  # curate and validate agree


def test_good_dataset_passes():
    report = validate_dataset(TRAIN, EVAL, SUITE, ValidateConfig())
    assert report.success, report.describe()
    assert report.failures == []
    assert (
        report.statistics["evaluated_expectations"] == report.statistics["successful_expectations"]
    )


@pytest.mark.parametrize(
    ("train", "evals", "expectation", "column", "sample"),
    [
        # the same id on both sides
        (TRAIN, [qa("t1", "d3")], "expect_column_values_to_be_unique", "id", "t1"),
        # a question leaning on "the passage"
        ([*TRAIN, qa("t4", "d2", question="What does the passage say about retries?")], EVAL,
         "expect_column_values_to_not_match_regex", "question",
         "What does the passage say about retries?"),
        # 61 words
        ([*TRAIN, qa("t4", "d2", answer="word " * 61)], EVAL,
         "expect_column_values_to_be_between", "answer_words", 61),
        # lineage missing
        ([*TRAIN, qa("t4", "d2", chunk_id=None)], EVAL,
         "expect_column_values_to_not_be_null", "chunk_id", None),
        # document d1 on both sides
        (TRAIN, [qa("e1", "d1")], "expect_column_values_to_be_null", "leaked_doc_id", "d1"),
        # question too short to name a subject
        ([*TRAIN, qa("t4", "d2", question="Why?")], EVAL,
         "expect_column_value_lengths_to_be_between", "question", "Why?"),
    ],
)  # fmt: skip
def test_bad_dataset_fails_by_name(train, evals, expectation, column, sample):
    report = validate_dataset(train, evals, SUITE, ValidateConfig())
    assert not report.success
    (failure,) = report.failures
    assert (failure["expectation"], failure["column"]) == (expectation, column)
    assert failure["unexpected_count"] >= 1
    assert sample in failure["sample_values"]


def test_row_minimums_per_side():
    report = validate_dataset(TRAIN, [], SUITE, ValidateConfig())
    assert [f["expectation"] for f in report.failures] == ["min_eval_rows"]
    report = validate_dataset(TRAIN, EVAL, SUITE, ValidateConfig(min_train_rows=5))
    assert [f["expectation"] for f in report.failures] == ["min_train_rows"]
    report = validate_dataset([], [], SUITE, ValidateConfig())
    assert {f["expectation"] for f in report.failures} == {
        "expect_table_row_count_to_be_between", "min_train_rows", "min_eval_rows",
    }  # fmt: skip


def _dataset(tmp_path, train, evals):
    counts = StageCounts.of(len(train) + len(evals), len(train) + len(evals), [])
    return save_output(Workspace(tmp_path), "decontaminate", "k", {"train": train, "eval": evals},
                       counts)  # fmt: skip


def test_task_fn_passes_and_writes_report(tmp_path):
    summary = validate.fn(_dataset(tmp_path, TRAIN, EVAL), ValidateConfig(), str(tmp_path))
    assert summary["success"] and summary["evaluated"] == summary["successful"]
    assert read_json(Path(summary["report"]))["success"] is True


def test_task_fn_raises_listing_failures(tmp_path):
    bad = [*TRAIN, qa("t4", "d2", question="According to the text, what is retried?")]
    with pytest.raises(DatasetValidationError) as err:
        validate.fn(_dataset(tmp_path, bad, EVAL), ValidateConfig(), str(tmp_path))
    message = str(err.value)
    assert "expect_column_values_to_not_match_regex on question: 1 unexpected" in message
    assert "According to the text, what is retried?" in message
    reports = list((tmp_path / "stages" / "validate").glob("*/report.json"))
    assert len(reports) == 1 and read_json(reports[0])["success"] is False
