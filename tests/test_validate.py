"""Validate: the suites load, a good dataset passes, each kind of bad dataset fails by name,
and a refresh that changes too much against the previous version is stopped."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from faqforge.config import ValidateConfig
from faqforge.records import KNOWLEDGE, UNSEEN_DOCUMENTS, EvalItem, QAPair
from faqforge.stage import StageCounts, save_output
from faqforge.storage import Workspace, read_json, write_jsonl
from tasks.curate import PASSAGE_REFERENCE
from tasks.gx_suites import load_suite
from tasks.validate import DatasetValidationError, resolve_suite, validate, validate_dataset

SUITE = resolve_suite(ValidateConfig().suite)  # the configured default, from any directory
SUMMARY = resolve_suite(ValidateConfig().summary_suite)


def qa(pid: str, doc_id: str, **changes) -> QAPair:
    pair = QAPair(
        id=pid, question=f"How does stage {pid} handle retries?", answer="With backoff.",
        doc_id=doc_id, chunk_id="c", source=f"{doc_id}.md", prompt_version="v1", teacher="t",
    )  # fmt: skip
    return replace(pair, **changes)


def ev(pid: str, doc_id: str, probe: str = UNSEEN_DOCUMENTS, **changes) -> EvalItem:
    return replace(EvalItem(**qa(pid, doc_id).to_dict(), probe=probe), **changes)


TRAIN = [qa("t1", "d1"), qa("t2", "d1"), qa("t3", "d2")]
# A held-out phrasing of t1's fact (from a training document) and a held-out document's item.
K1 = ev("k1", "d1", KNOWLEDGE, question="What does stage t1 retry with?", taught_by=["t1"])
EVAL = [ev("e1", "d3"), K1]


def test_suite_loads_and_mirrors_curate_rule():
    suite = load_suite(SUITE)
    assert suite.name == "qa_dataset" and len(suite.expectations) > 20
    regexes = [e["kwargs"]["regex"] for e in json.loads(SUITE.read_text())["expectations"]
               if e["type"] == "expect_column_values_to_not_match_regex"]  # fmt: skip
    assert regexes == ["(?i)" + PASSAGE_REFERENCE.pattern]  # curate and validate agree
    assert load_suite(SUMMARY).name == "qa_dataset_summary"


def test_good_dataset_passes():
    report = validate_dataset(TRAIN, EVAL, ValidateConfig())
    assert report.success, report.describe()
    assert report.failures == []
    assert (
        report.statistics["evaluated_expectations"] == report.statistics["successful_expectations"]
    )


@pytest.mark.parametrize(
    ("train", "evals", "expectation", "column", "sample"),
    [
        # the same id on both sides
        (TRAIN, [ev("t1", "d3", question="Which stage retries?"), K1],
         "expect_column_values_to_be_unique", "id", "t1"),
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
        # document d1 both in train and held out whole
        (TRAIN, [ev("e1", "d1"), K1], "expect_column_values_to_be_null", "leaked_doc_id", "d1"),
        # question too short to name a subject
        ([*TRAIN, qa("t4", "d2", question="Why?")], EVAL,
         "expect_column_value_lengths_to_be_between", "question", "Why?"),
        # the same question as t1 once normalised (case, punctuation), on the eval side
        (TRAIN, [ev("e1", "d3", question="how does STAGE t1 handle retries"), K1],
         "expect_column_values_to_be_unique", "question_norm", "how does stage t1 handle retries"),
        # a number where text belongs
        ([*TRAIN, qa("t4", "d2", answer=42)], EVAL,
         "expect_column_values_to_be_of_type", "answer", 42),
        # heading_path must be a list of headings
        ([*TRAIN, qa("t4", "d2", heading_path="Intro")], EVAL,
         "expect_column_values_to_be_of_type", "heading_path", "Intro"),
    ],
)  # fmt: skip
def test_bad_dataset_fails_by_name(train, evals, expectation, column, sample):
    report = validate_dataset(train, evals, ValidateConfig())
    assert not report.success
    (failure,) = report.failures
    assert (failure["expectation"], failure["column"]) == (expectation, column)
    assert failure["unexpected_count"] >= 1
    assert sample in failure["sample_values"]
    assert failure["rows"]  # the offending row indices, train rows first


def test_failure_rows_index_train_then_eval():
    report = validate_dataset(TRAIN, [ev("t1", "d3", question="Which?")], ValidateConfig())
    failure = next(f for f in report.failures if f["column"] == "id")
    assert failure["rows"] == [0, 3]  # t1 in train (row 0) and in eval (row 3)


def test_a_dataset_of_section_name_questions_fails_validation():
    generic = [qa(f"g{i}", "d1", question=f"What should I know about OPTIONS in git-x{i}(1)?")
               for i in range(3)]  # fmt: skip
    report = validate_dataset([*TRAIN, *generic], EVAL, ValidateConfig())
    (failure,) = report.failures
    assert failure["column"] == "generic_question_share"
    assert failure["sample_values"] == [0.375]  # 3 of 8 questions
    # Under the bound (one in 21 questions) it passes.
    padded = [*TRAIN, generic[0], *[qa(f"t{i}", "d2") for i in range(4, 19)]]
    assert validate_dataset(padded, EVAL, ValidateConfig()).success


def test_knowledge_items_come_from_training_documents_by_design():
    report = validate_dataset(TRAIN, [K1, ev("e1", "d3")], ValidateConfig())
    assert report.success, report.describe()  # d1 is in train and in the knowledge probe
    names = [(f["expectation"], f["column"]) for f in report.failures]
    assert names == []
    # Without a knowledge item there is no headline figure: the dataset is not published.
    report = validate_dataset(TRAIN, [ev("e1", "d3")], ValidateConfig())
    assert [f["column"] for f in report.failures] == ["knowledge_rows"]
    assert validate_dataset(TRAIN, [ev("e1", "d3")], ValidateConfig(min_knowledge_rows=0)).success


def test_row_minimums_per_side():
    names = lambda r: [(f["expectation"], f["column"]) for f in r.failures]  # noqa: E731
    between = "expect_column_values_to_be_between"
    assert names(validate_dataset(TRAIN, [], ValidateConfig())) == [
        (between, "eval_rows"), (between, "knowledge_rows"),
    ]  # fmt: skip
    report = validate_dataset(TRAIN, EVAL, ValidateConfig(min_train_rows=5))
    assert names(report) == [(between, "train_rows")]
    assert report.failures[0]["suite"] == "qa_dataset_summary"
    assert set(names(validate_dataset([], [], ValidateConfig()))) == {
        ("expect_table_row_count_to_be_between", None),
        (between, "train_rows"), (between, "eval_rows"), (between, "knowledge_rows"),
    }  # fmt: skip


def _version(root: Path, train, evals) -> Path:
    write_jsonl(root / "train.jsonl", train)
    write_jsonl(root / "eval.jsonl", evals)
    return root


PREVIOUS_TRAIN = [qa(f"p{i}", f"d{i % 3}") for i in range(10)]


@pytest.mark.parametrize(
    ("train", "cfg", "failing"),
    [
        # 8 of the previous 12 pairs gone: a collapse, not an edit (default bound 0.5)
        (PREVIOUS_TRAIN[:2], ValidateConfig(), {"removed_share"}),
        # the same collapse, published on purpose with a raised bound
        (PREVIOUS_TRAIN[:2], ValidateConfig(max_removed_share=1.0), set()),
        # 3 of 12 removed, 1 added: an ordinary refresh
        ([*PREVIOUS_TRAIN[:7], qa("n1", "d1")], ValidateConfig(), set()),
        # 40 added to 12: over the default growth bound of 3×, unbounded with None
        ([*PREVIOUS_TRAIN, *[qa(f"n{i}", "d1") for i in range(40)]], ValidateConfig(),
         {"added_share"}),
        ([*PREVIOUS_TRAIN, *[qa(f"n{i}", "d1") for i in range(40)]],
         ValidateConfig(max_added_share=None), set()),
    ],
)  # fmt: skip
def test_change_against_previous_version_is_bounded(tmp_path, train, cfg, failing):
    previous = _version(tmp_path / "prev", PREVIOUS_TRAIN, EVAL)
    report = validate_dataset(train, EVAL, cfg, previous)
    assert {f["column"] for f in report.failures} == failing
    assert report.change["removed_share"] == round(
        len({p.id for p in PREVIOUS_TRAIN} - {p.id for p in train}) / 12, 4
    )


def test_first_version_has_no_change_bound():
    report = validate_dataset(TRAIN, EVAL, ValidateConfig(max_removed_share=0.0))
    assert report.success and report.change == {"added_share": None, "removed_share": None}


def test_data_docs_written(tmp_path):
    report = validate_dataset(TRAIN, [], ValidateConfig(), docs_dir=tmp_path / "docs")
    assert report.data_docs == str(tmp_path / "docs" / "index.html")
    assert (tmp_path / "docs" / "index.html").is_file()
    pages = list((tmp_path / "docs" / "validations").rglob("*.html"))
    assert len(pages) == 2  # one per suite
    assert any("eval_rows" in p.read_text() for p in pages)


def _dataset(tmp_path, train, evals):
    counts = StageCounts.of(len(train) + len(evals), len(train) + len(evals), [])
    return save_output(Workspace(tmp_path), "decontaminate", "k", {"train": train, "eval": evals},
                       counts)  # fmt: skip


def test_task_fn_passes_and_writes_report(tmp_path):
    summary = validate.fn(_dataset(tmp_path, TRAIN, EVAL), ValidateConfig(), str(tmp_path))
    assert summary.success and summary.evaluated == summary.successful
    assert read_json(Path(summary.report))["success"] is True


def test_task_fn_raises_listing_failures(tmp_path):
    bad = [*TRAIN, qa("t4", "d2", question="According to the text, what is retried?")]
    with pytest.raises(DatasetValidationError) as err:
        validate.fn(_dataset(tmp_path, bad, EVAL), ValidateConfig(), str(tmp_path))
    message = str(err.value)
    assert "expect_column_values_to_not_match_regex on question: 1 unexpected" in message
    assert "Data Docs" in message
    assert "According to the text, what is retried?" in message
    reports = list((tmp_path / "stages" / "validate").glob("*/report.json"))
    assert len(reports) == 1 and read_json(reports[0])["success"] is False


def test_a_failure_leads_with_a_sentence_in_words_naming_where_the_records_went(tmp_path):
    counts = {
        "ingest": {"in": 6, "out": 6, "rejected": {}},
        "dedup": {"in": 48, "out": 7, "rejected": {"near_duplicate": 41}},
    }
    with pytest.raises(DatasetValidationError) as err:
        validate.fn(_dataset(tmp_path, TRAIN, []), ValidateConfig(), str(tmp_path), None, counts)
    first = str(err.value).splitlines()[0]
    assert first.startswith("the eval split is empty, below validate.min_eval_rows=1.")
    assert "dedup 48 in, 7 pairs (rejected: near_duplicate 41)" in first
    assert "expect_column_values_to_be_between on eval_rows" in str(err.value)  # then GX


def test_a_large_drop_is_explained_with_the_setting_that_allows_it(tmp_path):
    previous = tmp_path / "prev"
    many = [qa(f"p{i}", "d9") for i in range(20)]
    write_jsonl(previous / "train.jsonl", many + TRAIN)
    write_jsonl(previous / "eval.jsonl", EVAL)
    report = validate_dataset(TRAIN, EVAL, ValidateConfig(), previous)
    assert not report.success
    (sentence,) = [s for s in report.plain if "removes" in s]
    assert sentence.startswith("this version removes 80% of the previous version's pairs")
    assert "--set validate.max_removed_share=0.85" in sentence
