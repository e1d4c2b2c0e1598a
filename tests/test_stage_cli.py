"""``faqforge stage …``: one stage on a JSONL file, kept lines as given, named rejections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from faqforge.cli import app
from faqforge.storage import iter_jsonl

runner = CliRunner()
SENTENCE = "the teacher is only called for chunks whose text hash is not already in the cache"


def write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def run(tmp_path: Path, stage: str, rows: list, *extra: str):
    out = tmp_path / "kept.jsonl"
    result = runner.invoke(
        app, ["stage", stage, "--input", str(write(tmp_path / "in.jsonl", rows)),
              "--output", str(out), *extra],
    )  # fmt: skip
    rejected = tmp_path / "kept.jsonl.rejections.jsonl"
    kept = list(iter_jsonl(out)) if out.exists() else None
    return result, kept, list(iter_jsonl(rejected)) if rejected.exists() else None


GOOD = {"id": "q1", "question": "How are retries spaced?", "answer": "They back off exponentially."}


def test_curate_keeps_lines_as_given_and_names_rejections(tmp_path):
    rows = [
        # no lineage fields at all, plus an unknown field: kept, byte for byte the same object
        {**GOOD, "origin": "hand-written"},
        # leans on "the passage": rejected with the curate rule's reason
        {"id": "q2", "question": "What does the passage say about retries?", "answer": "Backoff."},
    ]
    result, kept, rejected = run(tmp_path, "curate", rows)
    assert result.exit_code == 0, result.output
    assert kept == [rows[0]]
    (rej,) = rejected
    assert (rej["record_id"], rej["stage"], rej["reason"]) == ("q2", "curate", "passage_reference")
    assert rej["line"] == 2 and rej["record"] == rows[1]
    assert "curate: 2 in, 1 kept, 1 rejected (passage_reference 1)" in result.output


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not JSON"),
        ('["a", "list"]', "expected a JSON object, got list"),
        ('{"id": "q9", "question": "Why?"}', "'answer' must be a non-empty string"),
        ('{"id": "q1", "question": "Again?", "answer": "Yes."}', "id 'q1' repeats an earlier line"),
    ],
)
def test_bad_line_is_named_rejected_and_the_rest_goes_on(tmp_path, line, problem):
    result, kept, rejected = run(tmp_path, "curate", [GOOD, line])
    assert result.exit_code == 1
    assert f"in.jsonl:2: {problem}" in result.output
    assert kept == [GOOD]  # the good line still went through the stage
    (rej,) = rejected
    assert (rej["reason"], rej["line"]) == ("bad_input", 2)
    assert rej["detail"].startswith(problem)


def test_dedup_names_duplicate_of(tmp_path):
    rows = [
        GOOD,
        {
            "id": "q2",
            "question": "how are RETRIES spaced",
            "answer": "They back off exponentially.",
        },
    ]
    # Semantic dedup (a 10 s model load) is off: the exact pass is what is asserted here.
    result, kept, rejected = run(tmp_path, "dedup", rows, "--set", "dedup.semantic=false")
    assert result.exit_code == 0, result.output
    assert kept == [GOOD]
    (rej,) = rejected
    assert (rej["record_id"], rej["stage"], rej["duplicate_of"]) == ("q2", "dedup", "q1")


def test_decontaminate_names_eval_id(tmp_path):
    evals = write(tmp_path / "eval.jsonl", [
        {"id": "e1", "question": "When is the teacher called?", "answer": f"In short: {SENTENCE}."},
    ])  # fmt: skip
    rows = [GOOD, {"id": "t1", "question": "Why are reruns cheap?", "answer": SENTENCE}]
    result, kept, rejected = run(tmp_path, "decontaminate", rows, "--eval", str(evals))
    assert result.exit_code == 0, result.output
    assert kept == [GOOD]
    (rej,) = rejected
    assert (rej["record_id"], rej["reason"], rej["eval_id"]) == ("t1", "eval_overlap", "e1")
    assert rej["eval_source"] == f"eval:{evals}"


def test_decontaminate_bad_eval_line_stops_before_any_output(tmp_path):
    evals = write(tmp_path / "eval.jsonl", ['{"id": "e1"}'])
    result, kept, _ = run(tmp_path, "decontaminate", [GOOD], "--eval", str(evals))
    assert result.exit_code == 2 and "eval.jsonl:1" in result.output
    assert kept is None
    result, _, _ = run(tmp_path, "decontaminate", [GOOD])  # no --eval and no benchmarks
    assert result.exit_code == 2 and "--eval" in result.output


def test_validate_rejects_failing_rows_and_exits_1(tmp_path):
    lineage = {"doc_id": "d1", "chunk_id": "c1", "source": "a.md", "prompt_version": "v1",
               "teacher": "t"}  # fmt: skip
    evals = write(tmp_path / "eval.jsonl", [
        {"id": "e1", "question": "Which stage splits the data?", "answer": "Split.",
         **lineage, "doc_id": "d2"},  # no probe: a held-out document's item
        {"id": "k1", "question": "How far apart are retries?", "answer": "Further each time.",
         **lineage, "probe": "knowledge", "taught_by": ["q1"]},  # a held-out phrasing
    ])  # fmt: skip
    rows = [
        {**GOOD, **lineage},
        # no lineage: validate is where that fails (the other stages do not read it)
        {"id": "q2", "question": "Where do rejections go?", "answer": "To a file."},
    ]
    result, kept, rejected = run(tmp_path, "validate", rows, "--eval", str(evals))
    assert result.exit_code == 1
    assert kept == [rows[0]]
    (rej,) = rejected
    assert (rej["record_id"], rej["reason"]) == ("q2", "expect_column_values_to_not_be_null")
    assert "validation FAILED" in result.output
    assert (tmp_path / "kept.jsonl.data_docs" / "index.html").is_file()
    # With lineage everywhere the suites pass.
    result, kept, rejected = run(tmp_path, "validate", rows[:1], "--eval", str(evals))
    assert result.exit_code == 0, result.output
    assert (kept, rejected) == ([rows[0]], [])


def test_config_and_set_reach_the_stage(tmp_path):
    long_answer = {**GOOD, "answer": "word " * 8}
    result, kept, rejected = run(tmp_path, "curate", [long_answer], "--set",
                                 "teacher.max_answer_words=5")  # fmt: skip
    assert result.exit_code == 0 and kept == []
    assert rejected[0]["reason"] == "answer_too_long"
    result, _, _ = run(tmp_path, "curate", [GOOD], "--set", "curate.nope=1")
    assert result.exit_code == 2 and "curate.nope" in result.output


def test_a_line_of_invalid_utf8_is_a_bad_input_rejection_and_the_rest_goes_on(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_bytes(
        json.dumps(GOOD).encode() + b"\n" + b'{"id": "q2", "question": "\xff\xfe?"}\n'
    )
    out = tmp_path / "kept.jsonl"
    result = runner.invoke(app, ["stage", "curate", "--input", str(source), "--output", str(out)])
    assert result.exit_code == 1
    assert f"{source}:2: not UTF-8" in result.output
    assert list(iter_jsonl(out)) == [GOOD]
    (rej,) = iter_jsonl(tmp_path / "kept.jsonl.rejections.jsonl")
    assert (rej["reason"], rej["line"]) == ("bad_input", 2)


@pytest.mark.parametrize(
    ("input_name", "output_name"),
    [("in.jsonl", "in.jsonl"), ("x.jsonl.rejections.jsonl", "x.jsonl")],  # kept, rejections
)
def test_output_that_would_overwrite_the_input_is_refused(tmp_path, input_name, output_name):
    source = write(tmp_path / input_name, [GOOD])
    before = source.read_bytes()
    out = tmp_path / output_name
    result = runner.invoke(app, ["stage", "curate", "--input", str(source), "--output", str(out)])
    assert result.exit_code == 2 and "would overwrite the input" in result.output
    assert source.read_bytes() == before
