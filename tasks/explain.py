"""Plain words for a refresh that has nothing to publish: which stage left nothing, and why.

An empty corpus used to run for minutes and end in ``expect_table_row_count_to_be_between …
observed [0]``. Here a refresh stops at the first stage that leaves no records, with its
counts and top rejection reasons, and a validation failure leads with one sentence per
failure in words; the Great Expectations detail follows.
"""

from __future__ import annotations

from typing import Any

from faqforge.stage import StageOutput

# What each stage's output is called, to say "0 documents", "0 chunks"…
UNITS = {
    "ingest": "documents",
    "chunk": "chunks",
    "generate": "pairs",
    "judge": "pairs",
    "curate": "pairs",
    "dedup": "pairs",
    "split": "pairs",
    "decontaminate": "pairs",
}


class NothingLeft(RuntimeError):
    """A stage left no records: nothing downstream could be published."""


def records_out(out: StageOutput) -> int:
    return out.counts.produced if out.counts.produced is not None else out.counts.out


def top_reasons(rejected: dict[str, int], n: int = 3) -> str:
    top = sorted(rejected.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    more = len(rejected) - len(top)
    return ", ".join(f"{r} {c}" for r, c in top) + (f" and {more} more" if more > 0 else "")


def stop_if_empty(out: StageOutput, source: str = "") -> StageOutput:
    """``out`` unchanged, or ``NothingLeft`` saying what the stage read and rejected."""
    if records_out(out) > 0:
        return out
    unit, c = UNITS.get(out.stage, "records"), out.counts
    if out.stage == "ingest" and c.in_ == 0:
        raise NothingLeft(f"ingest found no files to read under {source} (check `source` and "
                          "ingest.extensions): nothing to publish")  # fmt: skip
    why = f"; rejected: {top_reasons(c.rejected)}" if c.rejected else ""
    first = _first_rejection(out)
    raise NothingLeft(
        f"{out.stage} left 0 {unit} of {c.in_} in{why}{first}; nothing downstream can be "
        f"published (rejections: {out.dir})"
    )


def _first_rejection(out: StageOutput) -> str:
    if "rejections" not in out.files:
        return ""
    from faqforge.records import Rejection

    rows = out.read("rejections", Rejection)
    return f" (first: {rows[0].detail or rows[0].reason})" if rows else ""


def trail(counts: dict[str, dict[str, Any]]) -> str:
    """``ingest 5 → chunk 44 → generate 200 → curate 150 (rejected: …) → …``."""
    steps = []
    for stage, c in counts.items():
        n = c.get("produced", c["out"])
        rejected = f" (rejected: {top_reasons(c['rejected'])})" if c.get("rejected") else ""
        steps.append(f"{stage} {c['in']} in, {n} {UNITS.get(stage, 'out')}{rejected}")
    return " → ".join(steps)


def plain_failures(
    failures: list[dict[str, Any]],
    summary: dict[str, Any],
    params: dict[str, Any],
    counts: dict[str, dict[str, Any]] | None = None,
) -> list[str]:
    """One sentence per failed expectation, in the order the suites reported them."""
    sentences = []
    path = f" The records went: {trail(counts)}." if counts else ""
    for f in failures:
        column, expectation = f.get("column"), f["expectation"]
        if column in ("train_rows", "eval_rows", "knowledge_rows"):
            what = {"train_rows": "the training split", "eval_rows": "the eval split",
                    "knowledge_rows": "the knowledge probe"}[column]  # fmt: skip
            n, bound = summary.get(column), params.get(f"min_{column}")
            state = "is empty" if not n else f"has {n} rows"
            sentences.append(f"{what} {state}, below validate.min_{column}={bound}.{path}")
        elif column in ("removed_share", "added_share"):
            verb = "removes" if column == "removed_share" else "adds"
            share, bound = summary.get(column) or 0, params.get(f"max_{column}")
            allow = min(1.0, share + 0.05)
            sentences.append(
                f"this version {verb} {share:.0%} of the previous version's pairs, over "
                f"validate.max_{column}={bound}: a large change in the corpus or a stage; if "
                f"it is intended, re-run with --set validate.max_{column}={allow:.2f}"
            )
        elif column == "generic_question_share":
            sentences.append(
                f"{(summary.get(column) or 0):.0%} of questions are built on a section name or "
                f"page title, over validate.max_generic_question_share="
                f"{params.get('max_generic_question_share')}"
            )
        elif f.get("unexpected_count") is None:
            sentences.append(f"the dataset fails {expectation}: observed {f['sample_values']}"
                             f"{path if 'row_count' in expectation else ''}")  # fmt: skip
        else:
            sentences.append(
                f"{f['unexpected_count']} row(s) fail {expectation} on {column}, e.g. "
                f"{', '.join(map(str, f['sample_values']))[:160]}"
            )
    return sentences
