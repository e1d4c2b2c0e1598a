"""The evaluation's human views: report.md, a score histogram PNG and a CSV for review.

The report is what a person reads to decide whether the tuned model answers users better:
lineage first, then metrics with 95% intervals, pairwise rates, the promotion decision and
why, error categories with examples, and answers side by side. Rows are the per-item records
of ``predictions.jsonl``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from tasks.eval_errors import CATEGORIES

REPORT_ROWS = 20
SIDES = ("base", "tuned")


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip() or "∅"


def _num(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def _ci(ci: list[float] | None) -> str:
    return "" if ci is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def _signed(v: float | None) -> str:
    return "—" if v is None else f"{v:+.3f}"


def metric_table(metrics: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    ci = metrics["ci95"]
    lines = ["| metric | base [95% CI] | tuned [95% CI] | delta [95% CI] |", "|---|---|---|---|"]
    for m in names:
        b, t = metrics["base"][m], metrics["tuned"][m]
        delta = None if b is None or t is None else t - b
        lines.append(
            f"| {m} | {_num(b)}{_ci(ci['base'].get(m))} | {_num(t)}{_ci(ci['tuned'].get(m))} "
            f"| {_signed(delta)}{_ci(ci['delta'].get(m))} |"
        )
    return lines


def lineage_lines(lin: dict[str, Any]) -> list[str]:
    judge = lin["judge"]
    judge_text = (
        f"`{judge['model']}`, prompts {judge['prompt_versions']}"
        if judge["enabled"]
        else f"skipped: {judge['note']}"
    )
    return [
        f"- dataset version: `{lin['dataset_version']}`; eval items: {lin['n']} "
        f"(`{lin['eval_items_hash']}`)",
        f"- base model: `{lin['base_model']}`",
        f"- adapter: `{lin['adapter']}` (hash `{lin['adapter_hash']}`)",
        f"- generation: {lin['backend']} ({lin['backend_why']}), greedy, "
        f"max_new_tokens {lin['max_new_tokens']}",
        f"- judge: {judge_text}",
    ]


def render_report(
    metrics: dict[str, Any],
    rows: list[dict[str, Any]],
    extra: dict[str, Any],
    names: tuple[str, ...],
) -> str:
    """Markdown report; ``extra`` holds lineage, gate, errors, regression and the plot name."""
    lin, gate = extra["lineage"], extra["gate"]
    lines = [f"# Evaluation of `{lin['run_id']}`", "", *lineage_lines(lin), "", "## Metrics", ""]
    lines += metric_table(metrics, names)
    lines += ["", "## Pairwise preference (tuned vs base, judged in both orders)", ""]
    pw, pci = metrics["pairwise"], metrics["ci95"]["pairwise"]
    if pw["win"] is None:
        lines.append(f"Skipped: {lin['judge']['note']}.")
    else:
        lines += [f"- {k}: {pw[k]:.3f}{_ci(pci.get(k))}" for k in ("win", "tie", "loss")]
        lines.append("- a verdict that flips when the answers swap places counts as a tie")
    lines += ["", f"![score histogram]({extra['plot']})", "", "## Promotion", ""]
    verdict = "**promoted** to `runs/CHAMPION`" if metrics["promoted"] else "**not promoted**"
    lines.append(f"{verdict} (champion before: `{gate['champion_before'] or 'none'}`)")
    lines += [""] + [f"- {c}" for c in gate["checks"]]
    lines += ["", "## Error analysis", "", "| category | base | tuned |", "|---|---:|---:|"]
    errs = extra["errors"]
    lines += [
        f"| {c} | {errs['base'][c]['count']} | {errs['tuned'][c]['count']} |" for c in CATEGORIES
    ]
    lines += ["", "Examples (at most 3 per category and side):", ""]
    for side in SIDES:
        for c in CATEGORIES:
            for ex in errs[side][c]["examples"]:
                lines.append(f"- {side} {c} `{ex['id']}`: {_cell(ex['evidence'])}")
    if extra["sources_missing"]:
        lines.append(
            f"- {extra['sources_missing']} items' source chunks were not found in the "
            "workspace: their links were checked against the reference only"
        )
    lines += ["", "## General-ability regression check", "", extra["regression_md"]]
    lines += ["", f"## Answers (first {min(len(rows), REPORT_ROWS)} of {len(rows)})", ""]
    lines += [
        "| question | reference | base | tuned | rouge_l b/t | judge b/t |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows[:REPORT_ROWS]:
        s = r["scores"]
        lines.append(
            f"| {_cell(r['question'])} | {_cell(r['reference'])} | {_cell(r['base'])} "
            f"| {_cell(r['tuned'])} | {_num(s['base']['rouge_l'])} / {_num(s['tuned']['rouge_l'])} "
            f"| {_num(s['base']['judge_score'])} / {_num(s['tuned']['judge_score'])} |"
        )
    return "\n".join(lines) + "\n"


def plot_scores(rows: list[dict[str, Any]], path: Path) -> str:
    """Histogram of judge scores (1–10) per side, or of per-item ROUGE-L without a judge."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    judged = any(r["scores"]["tuned"]["judge_score"] is not None for r in rows)
    metric = "judge_score" if judged else "rouge_l"
    bins = [x + 0.5 for x in range(11)] if judged else [i / 10 for i in range(11)]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for side in SIDES:
        values = [v for r in rows if (v := r["scores"][side][metric]) is not None]
        ax.hist(values, bins=bins, alpha=0.6, label=side)
    ax.set_xlabel(metric + (" (1-10)" if judged else " per item (no judge ran)"))
    ax.set_ylabel("items")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return metric


def write_csv(rows: list[dict[str, Any]], path: Path, names: tuple[str, ...]) -> None:
    """One row per item: texts, every score per side, judge reasons, verdicts, error flags."""
    header = ["id", "question", "reference", "base", "tuned"]
    header += [f"{m}_{s}" for m in names for s in SIDES]
    header += [
        "judge_reason_base",
        "judge_reason_tuned",
        "pairwise",
        "errors_base",
        "errors_tuned",
        "human_verdict",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(header)
        for r in rows:
            out.writerow(
                [
                    r["id"],
                    r["question"],
                    r["reference"],
                    r["base"],
                    r["tuned"],
                    *[r["scores"][s][m] for m in names for s in SIDES],
                    r["judge"]["reason"]["base"],
                    r["judge"]["reason"]["tuned"],
                    r["judge"]["outcome"] or "",
                    "; ".join(r["errors"]["base"]),
                    "; ".join(r["errors"]["tuned"]),
                    "",
                ]
            )
