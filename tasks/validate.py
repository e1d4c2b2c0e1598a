"""Validate: the dataset must pass its expectation suites before it may be published.

Two Great Expectations suites (plain JSON in ``expectations/``, run by ``tasks/gx_suites.py``):
- ``qa_dataset.json`` on one row per pair (train + eval) with computed columns ``split``,
  ``answer_words``, ``question_norm`` (``tasks.text.normalise``) and ``leaked_doc_id`` (the
  doc_id when a document has training pairs and unseen-documents items, else null, so a
  failure names the leak; knowledge items come from training documents by design);
- ``qa_dataset_summary.json`` on one row of dataset-level numbers: rows per side, knowledge
  probe items (the headline figure needs some), the share of questions built on a section
  name or page title (``tasks/quality.py``), and the
  shares of the previous version's pairs removed and added (``tasks/diff.py``), bounded by
  ``ValidateConfig`` through suite parameters, so a collapsed refresh cannot be published.
Data Docs HTML goes next to ``report.json`` in the stage folder and is linked as an artifact.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from pydantic import BaseModel, ConfigDict

from faqforge.artifacts import artifact_key, cell
from faqforge.config import ValidateConfig
from faqforge.records import KNOWLEDGE, UNSEEN_DOCUMENTS, EvalItem, QAPair
from faqforge.stage import StageCounts, StageOutput, module_hash, save_output, stage_key
from faqforge.storage import Workspace, file_hash, write_json
from faqforge.tasking import in_prefect_run
from tasks.diff import change_shares
from tasks.explain import plain_failures
from tasks.gx_suites import SuiteRun, run_suites
from tasks.quality import generic_subject
from tasks.text import normalise

STAGE = "validate"
PROJECT_ROOT = Path(__file__).resolve().parents[1]


class DatasetValidationError(RuntimeError):
    """The dataset failed its suites; the message lists every failing expectation."""


@dataclass
class ValidationReport:
    """Outcome of one validation: overall success, GX statistics and every failure."""

    success: bool
    statistics: dict[str, Any]
    failures: list[dict[str, Any]] = field(default_factory=list)
    change: dict[str, Any] = field(default_factory=dict)
    data_docs: str | None = None
    plain: list[str] = field(default_factory=list)  # one sentence per failure, in words

    def describe(self) -> str:
        """The failures in words, then one line per failure: what failed, on which column,
        how often, with samples."""
        lines = [f"{s[:1].upper()}{s[1:]}" for s in self.plain]
        lines += ["Expectation detail:"] if self.plain else []
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


def dataset_frame(train: list[QAPair], evals: list[EvalItem]):
    """One row per pair, train then eval, with the computed columns the suite reads.

    ``leaked_doc_id`` is a document with training pairs and unseen-documents items: the
    probe that holds whole documents out would be scored on trained text. Knowledge items
    come from training documents by design (their wording is what is held out).
    """
    import pandas as pd

    rows = [
        {**p.to_dict(), "split": side}
        for side, ps in (("train", train), ("eval", evals))
        for p in ps
    ]
    df = pd.DataFrame(rows, columns=[*EvalItem.__dataclass_fields__, "split"], dtype=object)
    df["answer_words"] = df["answer"].map(lambda a: len(a.split()) if isinstance(a, str) else None)
    df["question_norm"] = df["question"].map(lambda q: normalise(q) if isinstance(q, str) else q)
    held_out = df["split"].eq("train") | df["probe"].eq(UNSEEN_DOCUMENTS)
    sides = df["split"].where(held_out).groupby(df["doc_id"]).transform("nunique")
    df["leaked_doc_id"] = df["doc_id"].where(held_out & (sides > 1), None)
    return df


def summary_frame(train: list[QAPair], evals: list[EvalItem], change: dict[str, Any]):
    """One row: ``train_rows``, ``eval_rows``, ``knowledge_rows``, ``removed_share``,
    ``added_share``."""
    import pandas as pd

    knowledge = sum(e.probe == KNOWLEDGE for e in evals)
    questions = [p.question for p in [*train, *evals]]
    generic = sum(generic_subject(q) for q in questions) / len(questions) if questions else 0.0
    row = {
        "train_rows": len(train),
        "eval_rows": len(evals),
        "knowledge_rows": knowledge,
        "generic_question_share": round(generic, 4),
        **change,
    }
    return pd.DataFrame([row], dtype=object)


def suite_parameters(cfg: ValidateConfig) -> dict[str, Any]:
    return cfg.model_dump(
        include={
            "min_train_rows",
            "min_eval_rows",
            "min_knowledge_rows",
            "max_generic_question_share",
            "max_removed_share",
            "max_added_share",
        }
    )


def validate_dataset(
    train: list[QAPair],
    evals: list[EvalItem],
    cfg: ValidateConfig,
    previous_dir: Path | None = None,
    docs_dir: Path | None = None,
    counts: dict[str, dict[str, Any]] | None = None,
) -> ValidationReport:
    """Run both suites over train + eval; ``previous_dir`` is the last published version,
    ``counts`` the stages' counts, named in the plain-words explanation of a failure."""
    change = change_shares(previous_dir, train, evals)
    summary = summary_frame(train, evals, change)
    runs = [
        SuiteRun(resolve_suite(cfg.suite), dataset_frame(train, evals)),
        SuiteRun(resolve_suite(cfg.summary_suite), summary),
    ]
    params = suite_parameters(cfg)
    statistics, failures = run_suites(runs, params, docs_dir)
    docs = str(docs_dir / "index.html") if docs_dir else None
    plain = plain_failures(failures, summary.iloc[0].to_dict(), params, counts)
    return ValidationReport(not failures, statistics, failures, change, docs, plain)


def change_words(change: dict[str, Any]) -> str:
    """``{"added_share": 0.1, "removed_share": None}`` as a sentence."""
    named = (("added", change.get("added_share")), ("removed", change.get("removed_share")))
    shares = [f"{share:.0%} {what}" for what, share in named if share is not None]
    return ", ".join(shares) if shares else "no previous version to compare with"


def report_markdown(report: ValidationReport, version: str | None = None) -> str:
    """The validation on its own page: what passed, each failure in words and in a table
    (the Data Docs HTML beside it needs the internet for its styles)."""
    stats = report.statistics
    of = f" of dataset {version}" if version else ""
    lines = [
        f"# Validation{of}: {'passed' if report.success else 'FAILED'}",
        "",
        f"{stats.get('successful_expectations')} of {stats.get('evaluated_expectations')} "
        f"expectations passed. Change against the previous version: "
        f"{change_words(report.change)}.",
    ]
    if report.plain:
        lines += ["", *[f"- {sentence}" for sentence in report.plain]]
    if report.failures:
        lines += [
            "",
            "| suite | expectation | column | unexpected | sample values |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {f['suite']} | {f['expectation']} | {f['column'] or ''} | "
            f"{f['unexpected_count'] if f['unexpected_count'] is not None else ''} | "
            f"{cell(', '.join(map(str, f['sample_values'])), 80)} |"
            for f in report.failures
        ]
    return "\n".join(lines)


def _artifacts(report: ValidationReport, workspace: Workspace, report_path: Path) -> None:
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(
        key=artifact_key("dataset-validation", workspace),
        markdown=report_markdown(report)
        + f"\n\nReport: `{workspace.relative(report_path)}`; Data Docs: "
        f"`{workspace.relative(Path(report.data_docs)) if report.data_docs else '-'}` "
        "(the published version keeps `validation.md` and `validation.json`).",
        description="the Great Expectations suites on the decontaminated split",
    )


class Validation(BaseModel):
    """What validate hands to publish (and the manifest's ``validation`` block)."""

    model_config = ConfigDict(frozen=True)

    success: bool
    evaluated: int | None
    successful: int | None
    report: str  # the stage's report.json
    data_docs: str | None
    change: dict[str, Any] | None = None


@task(name="validate")
def validate(
    dataset: StageOutput,
    cfg: ValidateConfig,
    workspace: str,
    previous: str | None = None,
    counts: dict[str, dict[str, Any]] | None = None,
) -> Validation:
    """Check the decontaminated split against ``previous`` (a dataset version); raise
    ``DatasetValidationError`` so publishing stops. ``counts``: each stage's, for the
    explanation of a failure."""
    ws = Workspace(Path(workspace))
    suites = [file_hash(resolve_suite(p)) for p in (cfg.suite, cfg.summary_suite)]
    key = stage_key(STAGE, module_hash(sys.modules[__name__]), dataset, cfg, suites, previous)
    previous_dir = ws.datasets / previous if previous else None
    train, evals = dataset.read("train", QAPair), dataset.read("eval", EvalItem)
    reports: list[ValidationReport] = []

    def write_report(staging: Path, final: Path) -> dict[str, str]:
        """The report and Data Docs, written whole and marked ``_SUCCESS`` like any stage."""
        made = validate_dataset(train, evals, cfg, previous_dir, staging / "data_docs", counts)
        docs = str(final / "data_docs" / "index.html") if made.data_docs else None
        reports.append(replace(made, data_docs=docs))
        write_json(staging / "report.json", asdict(reports[0]))
        return {"report": "report.json"}

    n = len(train) + len(evals)
    out = save_output(ws, STAGE, key, {}, StageCounts.of(n, n, []), extra=write_report)
    report, report_path = reports[0], out.path("report")
    if in_prefect_run():
        _artifacts(report, ws, report_path)
        stats = report.statistics
        get_run_logger().info(
            "validation %s: %s/%s expectations passed, %d failure(s), report %s",
            "passed" if report.success else "FAILED",
            stats.get("successful_expectations"),
            stats.get("evaluated_expectations"),
            len(report.failures),
            ws.relative(report_path),
        )
    if not report.success:
        raise DatasetValidationError(
            f"{report.plain[0] if report.plain else 'validation failed'}\n"
            f"dataset {dataset.stage}/{dataset.key} failed validation "
            f"(report: {report_path}, Data Docs: {report.data_docs}):\n{report.describe()}"
        )
    return Validation(
        success=report.success,
        evaluated=report.statistics.get("evaluated_expectations"),
        successful=report.statistics.get("successful_expectations"),
        report=str(report_path),
        data_docs=report.data_docs,
        change=report.change,
    )
