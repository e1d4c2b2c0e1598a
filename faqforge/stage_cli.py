"""``faqforge stage curate|dedup|decontaminate|validate``: one data stage on a JSONL file.

The same pure functions as the flow (``curate_pairs``, ``dedup_pairs``, ``remove_eval_overlap``,
``validate_dataset``), no Prefect run. Input: one QA record per line with non-empty string
``id``, ``question`` and ``answer``; other fields are kept. Missing lineage fields (``doc_id``,
``chunk_id``, ``source``, ``prompt_version``, ``teacher``) are read as null: the first three
stages do not read them, and validate reports them, since lineage is what it checks.

Outputs: the kept input lines, unchanged (unknown fields included), in ``--output``; one
rejection a dropped line in ``<output>.rejections.jsonl`` (``record_id``, ``stage``,
``reason``, ``detail``, what it collided with: ``duplicate_of`` / ``eval_id``, ``eval_source``
…, the input ``line`` and ``record``). A bad line (not a JSON object, a missing field, a
repeated id) is reported on stderr as ``FILE:LINE: reason`` and rejected as ``bad_input``; the
other lines go on, and the exit code is 1. A bad ``--eval`` line stops the command (exit 2):
a silently shorter reference would let leaks through.

validate: ``--input`` rows are train, ``--eval`` rows eval; a line failing a row-level
expectation is rejected with the expectation's name; table-level failures (sizes) are
printed; exit 1 when a suite fails, with Data Docs in ``<output>.data_docs/``. Exit 2: usage
or config errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any

import typer

from faqforge.config import ConfigError, PipelineConfig, load_config
from faqforge.records import EvalItem, QAPair, Rejection
from faqforge.storage import write_jsonl

stage_app = typer.Typer(
    help="Run one pipeline step on files (no Prefect run): ingest, chunk, generate, then "
    "curate, dedup, decontaminate, validate on JSONL QA records.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

REQUIRED = ("id", "question", "answer")
LINEAGE = ("doc_id", "chunk_id", "source", "prompt_version", "teacher")
PAIR_FIELDS = {f.name for f in fields(QAPair)}

InputOpt = Annotated[
    Path, typer.Option("--input", "-i", help="input records, JSONL", metavar="FILE")
]
OutputOpt = Annotated[
    Path, typer.Option("--output", "-o", help="records written, JSONL", metavar="FILE")
]
EvalOpt = Annotated[Path | None, typer.Option("--eval", help="eval records, JSONL", metavar="FILE")]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="pipeline YAML (default: built-in defaults)", metavar="FILE"
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="override a field", metavar="KEY.PATH=VALUE"),
]


@dataclass(frozen=True)
class Line:
    """An input line that parsed: its number, the record as given, and the pair it maps to."""

    lineno: int
    raw: dict[str, Any]
    pair: QAPair


def line_problem(row: Any, seen: set[str]) -> str | None:
    """Why a parsed line cannot be a QA record, or None."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    for name in REQUIRED:
        if not isinstance(row.get(name), str) or not row[name].strip():
            return f"'{name}' must be a non-empty string"
    if row["id"] in seen:
        return f"id {row['id']!r} repeats an earlier line"
    return None


def read_lines(path: Path, stage: str) -> tuple[list[Line], list[dict[str, Any]], list[str]]:
    """``(good lines, bad_input rejections, error messages)``; bad lines do not stop the rest."""
    good: list[Line] = []
    bad: list[dict[str, Any]] = []
    errors: list[str] = []
    seen: set[str] = set()
    with path.open("rb") as fh:
        for lineno, data in enumerate(fh, 1):
            text = data.decode("utf-8", errors="replace")  # shown as read, bad bytes as U+FFFD
            if not text.strip():
                continue
            try:
                data.decode("utf-8")
                row = json.loads(text)
                problem = line_problem(row, seen)
            except UnicodeDecodeError as exc:
                row, problem = text.rstrip("\n"), f"not UTF-8 (byte {exc.start} of the line)"
            except json.JSONDecodeError as exc:
                row, problem = text.rstrip("\n"), f"not JSON ({exc.msg})"
            if problem is None:
                seen.add(row["id"])
                pair = QAPair.from_dict({**dict.fromkeys(LINEAGE), **row})
                good.append(Line(lineno, row, pair))
                continue
            errors.append(f"{path}:{lineno}: {problem}")
            record_id = row.get("id") if isinstance(row, dict) else None
            bad.append(
                {
                    "record_id": record_id if isinstance(record_id, str) else f"{path}:{lineno}",
                    "stage": stage,
                    "reason": "bad_input",
                    "detail": problem,
                    "line": lineno,
                    "record": row,
                }
            )
    return good, bad, errors


def rejection_row(rejection: Rejection, line: Line) -> dict[str, Any]:
    """The flow's rejection, with what it collided with lifted out of its record."""
    extra = {k: v for k, v in rejection.record.items() if k not in PAIR_FIELDS}
    return {
        "record_id": rejection.record_id,
        "stage": rejection.stage,
        "reason": rejection.reason,
        "detail": rejection.detail,
        **extra,
        "line": line.lineno,
        "record": line.raw,
    }


def load_stage_config(config: Path | None, overrides: list[str] | None) -> PipelineConfig:
    try:
        return load_config(config, overrides)
    except ConfigError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None


def fail_usage(message: str) -> None:
    typer.secho(message, fg="red", err=True)
    raise typer.Exit(2)


def finish(
    stage: str,
    lines: list[Line],
    kept_pairs: dict[str, QAPair],
    rejections: list[dict[str, Any]],
    output: Path,
    errors: list[str],
    n_bad: int,
) -> None:
    """Write kept lines (as given, but for a question dedup repaired) and rejections, check
    and print the counts, exit 1 on bad lines."""
    from faqforge.stage import StageCounts

    kept = [
        {**line.raw, "question": kept_pairs[line.pair.id].question}
        for line in lines
        if line.pair.id in kept_pairs
    ]
    write_jsonl(output, kept)
    rejected_path = output.with_name(output.name + ".rejections.jsonl")
    write_jsonl(rejected_path, rejections)
    reasons = [Rejection(r["record_id"], stage, r["reason"]) for r in rejections]
    counts = StageCounts.of(len(lines) + n_bad, len(kept), reasons)
    by_reason = ", ".join(f"{r} {n}" for r, n in sorted(counts.rejected.items()))
    typer.echo(
        f"{stage}: {counts.in_} in, {counts.out} kept, {sum(counts.rejected.values())} rejected"
        f"{f' ({by_reason})' if by_reason else ''}\n  kept: {output}\n  rejections: {rejected_path}"
    )
    for error in errors:
        typer.secho(error, fg="red", err=True)
    if errors:
        raise typer.Exit(1)


def check_outputs(output: Path, *inputs: Path | None) -> None:
    """Exit 2 when ``--output`` (or its rejections file) would overwrite an input."""
    written = {output.resolve(), output.with_name(output.name + ".rejections.jsonl").resolve()}
    for path in inputs:
        if path is not None and path.resolve() in written:
            fail_usage(f"--output {output} would overwrite the input {path}: choose another file")


def run_pair_stage(stage: str, input_: Path, output: Path, apply, *others: Path | None) -> None:
    """Read, ``apply(pairs) -> (kept, rejections)``, map results back to lines, finish."""
    if not input_.is_file():
        fail_usage(f"--input {input_}: no such file")
    check_outputs(output, input_, *others)
    lines, bad, errors = read_lines(input_, stage)
    by_id = {line.pair.id: line for line in lines}
    kept, rejected = apply([line.pair for line in lines])
    rows = bad + [rejection_row(r, by_id[r.record_id]) for r in rejected]
    finish(stage, lines, {p.id: p for p in kept}, rows, output, errors, len(bad))


@stage_app.command("curate")
def stage_curate(
    input_: InputOpt, output: OutputOpt, config: ConfigOpt = None, set_: SetOpt = None
) -> None:
    """Heuristic filters: passage references, answer length, non-questions…"""
    cfg = load_stage_config(config, set_)
    from tasks.curate import curate_pairs

    words = cfg.teacher.max_answer_words  # the teacher's limit is the dataset's
    run_pair_stage(
        "curate", input_, output, lambda pairs: curate_pairs(pairs, cfg.curate, None, words)
    )


@stage_app.command("dedup")
def stage_dedup(
    input_: InputOpt, output: OutputOpt, config: ConfigOpt = None, set_: SetOpt = None
) -> None:
    """Ambiguous questions repaired, then exact and near-duplicate removal; each duplicate
    names `duplicate_of`. A repaired line keeps its id, with the new question."""
    cfg = load_stage_config(config, set_)
    from faqforge.storage import Workspace
    from faqforge.teachers.repair import make_repair
    from tasks.ambiguity import repair_ambiguous
    from tasks.dedup import dedup_pairs

    def apply(pairs: list[QAPair]) -> tuple[list[QAPair], list[Rejection]]:
        repair = make_repair(cfg.teacher, Workspace(cfg.workspace).teacher_cache)
        fixed = repair_ambiguous(pairs, repair, keep_ids=True)
        return dedup_pairs(fixed.pairs, cfg.dedup)

    run_pair_stage("dedup", input_, output, apply)


@stage_app.command("decontaminate")
def stage_decontaminate(
    input_: InputOpt,
    output: OutputOpt,
    eval_: EvalOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Drop records overlapping --eval or configured benchmarks; each names `eval_id`."""
    cfg = load_stage_config(config, set_)
    from tasks.decontaminate import remove_eval_overlap
    from tasks.references import read_references

    paths = ([eval_] if eval_ else []) + [p.expanduser() for p in cfg.decontaminate.benchmarks]
    if not paths:
        fail_usage("decontaminate needs --eval FILE or decontaminate.benchmarks in the config")
    refs = []
    for i, path in enumerate(paths):
        if not path.is_file():
            fail_usage(f"{path}: no such file")
        try:
            refs += read_references(path, "eval" if eval_ and i == 0 else "benchmark")
        except ValueError as exc:
            fail_usage(str(exc))
    run_pair_stage(
        "decontaminate",
        input_,
        output,
        lambda pairs: remove_eval_overlap(pairs, refs, cfg.decontaminate),
        *paths,
    )


@stage_app.command("validate")
def stage_validate(
    input_: InputOpt,
    output: OutputOpt,
    eval_: EvalOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Run the expectation suites: --input as train, --eval as eval; exit 1 on failure."""
    cfg = load_stage_config(config, set_)
    from tasks.validate import validate_dataset

    for path in (input_, eval_):
        if path is not None and not path.is_file():
            fail_usage(f"{path}: no such file")
    check_outputs(output, input_, eval_)
    lines, bad, errors = read_lines(input_, "validate")
    evals: list[EvalItem] = []
    if eval_ is not None:
        eval_lines, _, eval_errors = read_lines(eval_, "validate")
        if eval_errors:
            fail_usage("\n".join(eval_errors))
        # The probe comes with each eval row (``probe``, ``taught_by``; unseen_documents when
        # absent), as in a published eval.jsonl.
        evals = [EvalItem.from_dict({**line.pair.to_dict(), **line.raw}) for line in eval_lines]
    docs_dir = output.with_name(output.name + ".data_docs")
    report = validate_dataset([line.pair for line in lines], evals, cfg.validate_, None, docs_dir)
    first_failure: dict[int, dict[str, Any]] = {}
    for f in report.failures:
        for row in f["rows"]:
            if row < len(lines):  # rows past the input are --eval rows
                first_failure.setdefault(row, f)
    rows = bad + [
        {
            "record_id": lines[i].pair.id,
            "stage": "validate",
            "reason": f["expectation"],
            "detail": f"{f['suite']}: column {f['column']}",
            "line": lines[i].lineno,
            "record": lines[i].raw,
        }
        for i, f in sorted(first_failure.items())
    ]
    failed = {lines[i].pair.id for i in first_failure}
    kept = {line.pair.id: line.pair for line in lines if line.pair.id not in failed}
    if not report.success:
        errors = [*errors, f"validation FAILED (Data Docs: {report.data_docs}):", report.describe()]
    finish("validate", lines, kept, rows, output, errors, len(bad))
