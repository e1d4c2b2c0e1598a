"""Validate: the dataset must pass its expectation suite before it may be published.

The suite is plain Great Expectations JSON (``expectations/qa_dataset.json``), run on one
DataFrame of train + eval rows with three computed columns: ``split`` (the row's side),
``answer_words`` (whitespace word count) and ``leaked_doc_id`` (the doc_id when that document
is on both sides, else null, so a failure names the leaking documents). Per-side row minimums
come from ``ValidateConfig``, so they are checked here and reported in the same failure list.
GX runs in an ephemeral context (nothing written, no network); its 4–6 s import is lazy.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task

from faqforge.config import ValidateConfig
from faqforge.records import QAPair
from faqforge.stage import StageOutput, module_hash, stage_key
from faqforge.storage import Workspace, file_hash, write_json
from faqforge.tasking import in_prefect_run

STAGE = "validate"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_SIZE = 5


class DatasetValidationError(RuntimeError):
    """The dataset failed its suite; the message lists every failing expectation."""


@dataclass
class ValidationReport:
    """Outcome of one validation: overall success, GX statistics and every failure."""

    success: bool
    statistics: dict[str, Any]
    failures: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        """One line per failure: what failed, on which column, how often, with samples."""
        lines = []
        for f in self.failures:
            where = f" on {f['column']}" if f["column"] else ""
            if f["unexpected_count"] is None:
                found = f"observed {f['sample_values']}"
            else:
                found = f"{f['unexpected_count']} unexpected, e.g. {f['sample_values']}"
            lines.append(f"- {f['expectation']}{where}: {found}")
        return "\n".join(lines)


def resolve_suite(path: Path) -> Path:
    """Relative suite paths are relative to the project root, not the working directory."""
    return path if path.is_absolute() else PROJECT_ROOT / path


def dataset_frame(train: list[QAPair], evals: list[QAPair]):
    """One row per pair with ``split``, ``answer_words`` and ``leaked_doc_id`` added."""
    import pandas as pd

    rows = [
        {**p.to_dict(), "split": side}
        for side, ps in (("train", train), ("eval", evals))
        for p in ps
    ]
    df = pd.DataFrame(rows, columns=[*QAPair.__dataclass_fields__, "split"])
    df["answer_words"] = df["answer"].map(lambda a: len(a.split()) if isinstance(a, str) else None)
    both_sides = df.groupby("doc_id")["split"].transform("nunique") > 1
    df["leaked_doc_id"] = df["doc_id"].where(both_sides, None)
    return df


def load_suite(path: Path):
    """An ``ExpectationSuite`` from its JSON file (the stored ``id`` is dropped)."""
    import great_expectations as gx

    data = json.loads(Path(path).read_text())
    data.pop("id", None)
    return gx.ExpectationSuite(**data)


def _failure(result: dict[str, Any]) -> dict[str, Any]:
    config, outcome = result["expectation_config"], result.get("result", {})
    # Column-map expectations list unexpected values; table-level ones an observed value.
    samples = outcome.get("partial_unexpected_list", [outcome.get("observed_value")])
    return {
        "expectation": config["type"],
        "column": config["kwargs"].get("column"),
        "unexpected_count": outcome.get("unexpected_count"),
        "sample_values": samples[:SAMPLE_SIZE],
    }


def run_suite(df, suite_path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the suite on the frame in a throwaway context: ``(statistics, failures)``."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        ),
    )
    batch = (
        context.data_sources.add_pandas("faqforge")
        .add_dataframe_asset("qa_dataset")
        .add_batch_definition_whole_dataframe("all")
    )
    suite = context.suites.add(load_suite(suite_path))
    definition = gx.ValidationDefinition(name="qa_dataset", data=batch, suite=suite)
    result = definition.run(batch_parameters={"dataframe": df}).to_json_dict()
    failures = [_failure(r) for r in result["results"] if not r["success"]]
    return result["statistics"], failures


def split_checks(train: list[QAPair], evals: list[QAPair], cfg: ValidateConfig) -> list[dict]:
    """Per-side row minimums, which depend on the config rather than on the suite."""
    failures = []
    for side, rows, minimum in (
        ("train", train, cfg.min_train_rows),
        ("eval", evals, cfg.min_eval_rows),
    ):
        if len(rows) < minimum:
            failures.append(
                {
                    "expectation": f"min_{side}_rows",
                    "column": "split",
                    "unexpected_count": None,
                    "sample_values": [f"{len(rows)} {side} rows, need ≥ {minimum}"],
                }
            )
    return failures


def validate_dataset(
    train: list[QAPair], evals: list[QAPair], suite_path: Path, cfg: ValidateConfig
) -> ValidationReport:
    """Run the suite and the per-side checks over train + eval."""
    statistics, failures = run_suite(dataset_frame(train, evals), resolve_suite(suite_path))
    failures += split_checks(train, evals, cfg)
    return ValidationReport(success=not failures, statistics=statistics, failures=failures)


def report_markdown(report: ValidationReport, report_path: Path) -> str:
    stats = report.statistics
    lines = [
        f"# Dataset validation: {'passed' if report.success else 'FAILED'}",
        "",
        f"{stats.get('successful_expectations')} of {stats.get('evaluated_expectations')} "
        f"expectations passed. Report: `{report_path}`",
    ]
    if report.failures:
        lines += ["", "| expectation | column | unexpected | sample values |", "|---|---|---|---|"]
        lines += [
            f"| {f['expectation']} | {f['column'] or ''} | {f['unexpected_count'] or ''} | "
            f"{', '.join(map(str, f['sample_values']))[:200]} |"
            for f in report.failures
        ]
    return "\n".join(lines)


@task(name="validate")
def validate(dataset: StageOutput, cfg: ValidateConfig, workspace: str) -> dict[str, Any]:
    """Check the decontaminated split; raise ``DatasetValidationError`` so publishing stops."""
    suite = resolve_suite(cfg.suite)
    key = stage_key(STAGE, module_hash(sys.modules[__name__]), dataset, cfg, file_hash(suite))
    report = validate_dataset(
        dataset.read("train", QAPair), dataset.read("eval", QAPair), suite, cfg
    )
    report_path = Workspace(Path(workspace)).stage_dir(STAGE, key) / "report.json"
    write_json(report_path, asdict(report))
    if in_prefect_run():
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(
            key="dataset-validation",
            markdown=report_markdown(report, report_path),
            description=f"validation of {dataset.stage} output {dataset.key}",
        )
        stats = report.statistics
        get_run_logger().info(
            "validation %s: %s/%s expectations passed, %d failure(s), report %s",
            "passed" if report.success else "FAILED",
            stats.get("successful_expectations"),
            stats.get("evaluated_expectations"),
            len(report.failures),
            report_path,
        )
    if not report.success:
        raise DatasetValidationError(
            f"dataset {dataset.stage}/{dataset.key} failed validation against {suite} "
            f"(report: {report_path}):\n{report.describe()}"
        )
    return {
        "success": report.success,
        "evaluated": report.statistics.get("evaluated_expectations"),
        "successful": report.statistics.get("successful_expectations"),
        "report": str(report_path),
    }
