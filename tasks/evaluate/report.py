"""The evaluation's human views: report.md, a score histogram PNG and a CSV for review.

The report is what a person reads to decide whether the tuned model answers users better: one
sentence first (the knowledge probe's score, base, and the knowledge lift with its interval,
or a warning about degenerate output), then lineage, each probe's metrics with 95% intervals,
abstention on unseen documents, answer shape, pairwise rates, the promotion decision and
why, error categories with examples, and answers question by question. Rows are the
per-item records of ``predictions.jsonl``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from faqforge.artifacts import cell
from tasks.evaluate.errors import CATEGORIES

REPORT_ROWS = 20
CELL_CHARS = 240
SIDES = ("base", "tuned")


def _cell(text: Any) -> str:
    """One line (a ``\\r`` or newline in a model's answer would break a block or row), at most
    ``CELL_CHARS``: ``predictions.jsonl`` and ``report.csv`` hold the whole text."""
    return cell(text, CELL_CHARS) or "∅"


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
        f"- dataset version: `{lin['dataset_version']}`; eval items scored: {lin['n']} "
        f"(`{lin['eval_items_hash']}`)",
        f"- base model: `{lin['base_model']}`",
        f"- adapter: `{lin['adapter']}` (hash `{lin['adapter_hash']}`)",
        f"- generation: {lin['backend']} ({lin['backend_why']}), greedy, "
        f"max_new_tokens {lin['max_new_tokens']}",
        f"- judge: {judge_text}",
    ]


def _rate(v: float | None) -> str:
    return "—" if v is None else f"{v:.0%}"


def lift_lines(lift: dict[str, Any]) -> list[str]:
    if lift["value"] is None:
        return ["No knowledge-probe item was scored, so there is no lift to report."]
    lo, hi = lift["ci95"]
    lines = [
        f"Knowledge lift on {lift['metric']}: **{lift['value']:+.3f}** [{lo:+.3f}, {hi:+.3f}] "
        f"= knowledge gain {lift['knowledge_gain']:+.3f} ({lift['n_knowledge']} items)",
    ]
    if lift["uncorrected"]:
        lines[0] += " (no unseen-documents items: not corrected for style)."
    else:
        lines[0] += (
            f" − unseen-documents gain {lift['unseen_gain']:+.3f} ({lift['n_unseen']} items)."
        )
    lines += [
        "",
        "The unseen-documents gain is what answer style alone buys (a closed-book model cannot "
        "know those documents); the interval resamples each probe's items, paired base/tuned.",
    ]
    return lines


def degenerate_lines(shape: dict[str, Any]) -> list[str]:
    lines = [
        "| side | empty | distinct | length vs reference | problems |",
        "|---|---|---|---|---|",
    ]
    for side in SIDES:
        d = shape[side]
        ratio = "—" if d["length_ratio"] is None else f"{d['length_ratio']:.2f}×"
        problems = "; ".join(d["problems"]) or "none"
        lines.append(
            f"| {side} | {_rate(d['empty_share'])} | {_rate(d['distinct_share'])} | {ratio} "
            f"| {cell(problems, 70)} |"
        )
    return lines


def example_lines(rows: list[dict[str, Any]], limit: int) -> list[str]:
    """Per-question examples as short blocks (readable at any width), each probe's first."""
    lines: list[str] = []
    for probe in ("knowledge", "unseen_documents"):
        picked = [r for r in rows if r["probe"] == probe][:limit]
        if not picked:
            continue
        lines += ["", f"### {probe.replace('_', ' ')} ({len(picked)} shown)"]
        for r in picked:
            s = r["scores"]
            lines += [
                "",
                f"**{_cell(r['question'])}** (`{r['id']}`)",
                f"- reference: {_cell(r['reference'])}",
                f"- base: {_cell(r['base'])} (token F1 {_num(s['base']['token_f1'])})",
                f"- tuned: {_cell(r['tuned'])} (token F1 {_num(s['tuned']['token_f1'])})",
            ]
    return lines


def render_report(
    metrics: dict[str, Any],
    rows: list[dict[str, Any]],
    extra: dict[str, Any],
    names: tuple[str, ...],
) -> str:
    """Markdown report; ``extra`` holds lineage, gate, errors, regression and the plot name.

    It opens with the headline sentence, then the knowledge probe and its lift, the
    unseen-documents probe (abstention), answer shape, the gate, errors, the regression check
    and per-question examples.
    """
    lin, gate = extra["lineage"], extra["gate"]
    probes = metrics["probes"]
    know, unseen = probes["knowledge"], probes["unseen_documents"]
    lines = [metrics["headline"], "", f"# Evaluation of `{lin['run_id']}`", ""]
    rules = extra.get("rules", {})
    lines += [*lineage_lines(lin), "", "## Knowledge probe: held-out phrasings of trained facts"]
    if rules.get("knowledge"):
        lines += ["", f"Kept out of training: {rules['knowledge']}."]
    lines += ["", *lift_lines(metrics["knowledge_lift"]), ""]
    lines += metric_table(know, names)
    if know.get("untaught"):
        lines += [
            "",
            f"{know['untaught']} knowledge items were not scored: no training pair of their "
            "fact is left in this dataset version.",
        ]
    lines += ["", "## Unseen-documents probe: questions about documents never trained on", ""]
    if rules.get("unseen_documents"):
        lines += [f"Kept out of training: {rules['unseen_documents']}.", ""]
    answers = unseen.get("answers", {})
    lines += [
        f"{unseen['n']} items. Confident answers (neither empty nor a refusal) where the honest "
        f'answer is "I don\'t know": base {_rate(answers.get("base", {}).get("confident"))}, '
        f"tuned {_rate(answers.get('tuned', {}).get('confident'))}; confidently wrong: base "
        f"{_rate(answers.get('base', {}).get('confident_wrong'))}, tuned "
        f"{_rate(answers.get('tuned', {}).get('confident_wrong'))}.",
        "",
    ]
    lines += metric_table(unseen, names) if unseen["n"] else ["No unseen-documents items."]
    lines += ["", "## Answer shape", "", *degenerate_lines(metrics["degenerate"])]
    lines += ["", "## Pairwise preference (knowledge probe, judged in both orders)", ""]
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
    lines += ["", "## Answers", *example_lines(rows, REPORT_ROWS // 2)]
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
    header = ["id", "probe", "question", "reference", "base", "tuned"]
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
                    r["probe"],
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
