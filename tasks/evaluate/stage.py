"""Evaluate a fine-tuning run: does the tuned model answer a differently worded question about
a fact in the documents better than its base?

Reads the run's manifest and the eval probes of its dataset version (``records.EvalItem``:
``knowledge``, held-out phrasings of trained facts; ``unseen_documents``, whole held-out
documents); answers every question with the base model and with base + adapter
(``answers``: greedy, batched, cached); scores each answer against the reference
(``metrics``), has the teacher judge it (``grader``/``grading``; skipped for
the extractive teacher), sorts failures into categories (``errors``), summarises each
probe with 95% bootstrap intervals, computes the knowledge lift, abstention on unseen
documents and degenerate output (``probes``), decides promotion (``promote``),
optionally checks general ability (``regression``) and writes ``runs/<run-id>/eval/``:
report.md (opening with one sentence: the headline), scores.png, predictions.jsonl,
predictions.csv, metrics.json, manifest.json; the run's model card gets the headline too.

    faqforge run evaluate --workspace /tmp/ws          # the LATEST run
    python -m flows.evaluate
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

from prefect import task

from faqforge.artifacts import artifact_key, embed_image
from faqforge.config import EvaluateConfig, TeacherConfig, stable_hash
from faqforge.records import KNOWLEDGE, PROBES, UNSEEN_DOCUMENTS, EvalItem, QAPair
from faqforge.storage import (
    RunManifest,
    Workspace,
    atomic_write_text,
    read_json,
    read_records,
    read_run_manifest,
    write_json,
    write_jsonl,
)
from faqforge.tasking import in_prefect_run
from tasks.evaluate.cache import EvalCache, adapter_hash
from tasks.evaluate.errors import ErrorRules, categorize, summarize
from tasks.evaluate.metrics import REFERENCE_METRICS, item_scores
from tasks.promote import gate

METRICS = (*REFERENCE_METRICS, "judge_score")
SIDES = ("base", "tuned")


def judge_skip_note(teacher: TeacherConfig | None, cfg: EvaluateConfig) -> str | None:
    """Why no judge runs, or None when one does."""
    if not cfg.judge:
        return "evaluate.judge is off"
    if teacher is None:
        return "no teacher configuration was given"
    if teacher.kind == "extractive" and teacher.judge.base_url is None:
        return "the extractive teacher has no model to judge with (set teacher.kind: openai)"
    return None


def champion_run(ws: Workspace, run_id: str) -> tuple[str | None, RunManifest | None]:
    """The current champion's id, and its manifest when it is another run still on disk."""
    champ = ws.read_pointer(ws.RUNS_CHAMPION)
    path = ws.runs / champ / "manifest.json" if champ else None
    if champ is None or champ == run_id or path is None or not path.is_file():
        return champ, None
    return champ, read_run_manifest(ws, path.parent)


def generate(
    manifest: RunManifest,
    champ: RunManifest | None,
    questions: list[str],
    cfg: EvaluateConfig,
    cache: EvalCache,
) -> tuple[dict[str, list], str, str]:
    """Answers per side (base, tuned, champion when there is one), backend and why."""
    from tasks.evaluate.answers import answer_all, choose_backend

    base_model, adapter = manifest.base_model, manifest.adapter_dir
    prompt = manifest.config["system_prompt"]
    champ_adapter = champ.adapter_dir if champ else None
    backend, why = choose_backend(cfg, [adapter, champ_adapter])
    same_base = champ is not None and champ.base_model == base_model
    adapters = [None, adapter, *([champ_adapter] if same_base else [])]
    answers = answer_all(base_model, adapters, questions, cfg, prompt, cache, backend)
    sides = dict(zip(["base", "tuned", "champion"], answers, strict=False))
    if champ is not None and not same_base:
        sides["champion"] = answer_all(
            champ.base_model,
            [champ_adapter],
            questions,
            cfg,
            champ.config["system_prompt"],
            cache,
            backend,
        )[0]
    return sides, backend, why


def run_judge(
    teacher: TeacherConfig,
    cfg: EvaluateConfig,
    pairs: Sequence[QAPair],
    texts: dict[str, list[str]],
    cache: EvalCache,
) -> Any:
    """Judge every side's answers; fail when more than the allowed share of requests failed."""
    from faqforge.teachers import make_backend
    from tasks.evaluate.grader import JudgePrompts
    from tasks.evaluate.grading import Item, judge_items

    items = [Item(p.id, p.question, p.answer) for p in pairs]
    backend = make_backend(teacher, judge=True)
    prompts = JudgePrompts.load()
    run = asyncio.run(
        judge_items(
            backend,
            prompts,
            items,
            texts,
            cache,
            concurrency=teacher.concurrency,
            temperature=teacher.judge.temperature,
            max_tokens=cfg.judge_max_tokens,
        )
    )
    share = len(run.failures) / max(run.requests, 1)
    if share > cfg.judge_max_failure_share:
        first = run.failures[0]
        raise RuntimeError(
            f"judge {backend.model}: {len(run.failures)} of {run.requests} requests failed "
            f"(> evaluate.judge_max_failure_share={cfg.judge_max_failure_share}); first: item "
            f"{first['id']} {first['kind']}: {first['detail']}; raw reply: {first['raw'][:300]!r}"
        )
    return run, backend.model, prompts.versions


def scored_items(items: list[EvalItem], cfg: EvaluateConfig) -> tuple[list[EvalItem], int]:
    """The items to score, knowledge probe first, and how many knowledge items are untaught.

    A knowledge item whose fact has no training pair left (``taught_by`` empty: its chunk
    changed, or decontamination removed every sibling) measures nothing and is not scored.
    ``cfg.max_items`` caps each probe.
    """
    knowledge = [i for i in items if i.probe == KNOWLEDGE]
    taught = [i for i in knowledge if i.taught_by]
    unseen = [i for i in items if i.probe == UNSEEN_DOCUMENTS]
    cap = cfg.max_items
    return [*taught[:cap], *unseen[:cap]], len(knowledge) - len(taught)


def headline(
    lift: dict[str, Any], probe: dict[str, Any], problems: list[str], untaught: int
) -> str:
    """The one sentence a report opens with: what the tuned model learned, and any warning."""
    metric = lift["metric"]
    warning = f"DEGENERATE OUTPUT: {'; '.join(problems)}. " if problems else ""
    if lift["value"] is None:
        why = f" ({untaught} knowledge items have no training pair left)" if untaught else ""
        return (
            f"{warning}No knowledge-probe item could be scored{why}: this evaluation cannot say "
            "whether the tuned model learned the documents."
        )
    lo, hi = lift["ci95"]
    style = (
        "not corrected for style: no unseen-documents items"
        if lift["uncorrected"]
        else f"after subtracting the {lift['unseen_gain']:+.3f} it gained on "
        f"{lift['n_unseen']} questions about unseen documents"
    )
    return (
        f"{warning}On {lift['n_knowledge']} held-out questions about facts it was trained on, "
        f"the tuned model scored {metric} {probe['tuned'][metric]:.3f} (base "
        f"{probe['base'][metric]:.3f}); knowledge lift {lift['value']:+.3f} "
        f"[{lo:+.3f}, {hi:+.3f}], {style}."
    )


def evaluate_run(
    run_dir: Path, cfg: EvaluateConfig, ws: Workspace, teacher: TeacherConfig | None = None
) -> dict[str, Any]:
    """Score a run's base and tuned model on its eval probes; write ``run_dir/eval/``."""
    from tasks.evaluate.grader import rates
    from tasks.evaluate.intervals import outcome_intervals
    from tasks.evaluate.probes import (
        confident_rates,
        degeneracy,
        knowledge_lift,
        probe_summary,
    )
    from tasks.evaluate.regression import regression_check, regression_markdown
    from tasks.evaluate.report import plot_scores, render_report, write_csv
    from tasks.training.outputs import add_evaluation_to_card

    manifest = read_run_manifest(ws, run_dir)
    items = read_records(Path(manifest.dataset_dir) / "eval.jsonl", EvalItem)
    pairs, untaught = scored_items(items, cfg)
    refs = [p.answer for p in pairs]
    questions = [p.question for p in pairs]
    cache = EvalCache(ws.eval_cache)
    champ_id, champ = champion_run(ws, manifest.run_id)
    answers, backend, why = generate(manifest, champ, questions, cfg, cache)
    texts = {side: [a.text for a in ans] for side, ans in answers.items()}
    scores: dict[str, list[dict[str, float | None]]] = {
        side: item_scores(t, refs, questions) for side, t in texts.items()
    }

    note = judge_skip_note(teacher, cfg)
    judged, judge_model, prompt_versions = None, None, None
    if note is None and teacher is not None and pairs:
        judged, judge_model, prompt_versions = run_judge(teacher, cfg, pairs, texts, cache)
    for side, per_item in scores.items():
        grades = judged.grades[side] if judged else [None] * len(per_item)
        for it, g in zip(per_item, grades, strict=True):
            it["judge_score"] = None if g is None else float(g.score)
    outcomes = judged.outcomes if judged else [None] * len(pairs)

    index = {probe: [i for i, p in enumerate(pairs) if p.probe == probe] for probe in PROBES}

    def of(probe: str) -> dict[str, list[dict[str, Any]]]:
        return {side: [scores[side][i] for i in index[probe]] for side in scores}

    probes = {probe: probe_summary(of(probe), METRICS, cfg) for probe in PROBES}
    probes[KNOWLEDGE]["untaught"] = untaught
    unseen = index[UNSEEN_DOCUMENTS]
    for side in SIDES:
        probes[UNSEEN_DOCUMENTS].setdefault("answers", {})[side] = confident_rates(
            [texts[side][i] for i in unseen],
            [float(scores[side][i]["token_f1"] or 0.0) for i in unseen],
            cfg.correct_f1,
        )
    lift = knowledge_lift(
        of(KNOWLEDGE), of(UNSEEN_DOCUMENTS), cfg.lift_metric, cfg.bootstrap_resamples, cfg.seed
    )
    shape = {side: degeneracy(texts[side], refs, cfg) for side in SIDES}
    problems = list(shape["tuned"].problems)
    first_line = headline(lift, probes[KNOWLEDGE], problems, untaught)

    chunks = ws.kept_chunks({p.chunk_id for p in pairs})
    sources = {chunk_id: row["text"] for chunk_id, row in chunks.items()}
    rules = ErrorRules(cfg.repetition_ngram, cfg.repetition_min_count, cfg.verbosity_ratio)
    flags = {
        side: [
            categorize(a.text, p.answer, sources.get(p.chunk_id, ""), a.truncated, rules)
            for a, p in zip(answers[side], pairs, strict=True)
        ]
        for side in SIDES
    }
    errors = {side: summarize(flags[side], [p.id for p in pairs]) for side in SIDES}
    knowledge = probes[KNOWLEDGE]
    decided = [o for i in index[KNOWLEDGE] if (o := outcomes[i]) is not None]
    ci95: dict[str, Any] = dict(knowledge["ci95"])
    ci95["pairwise"] = outcome_intervals(decided, cfg.bootstrap_resamples, cfg.seed)
    pairwise = rates(decided)
    verdict = gate(
        knowledge["base"],
        knowledge["tuned"],
        pairwise,
        knowledge.get("champion"),
        cfg,
        lift=lift,
        degenerate=problems,
    )
    if verdict.promoted:
        ws.write_pointer(ws.RUNS_CHAMPION, manifest.run_id)

    base_model, adapter = manifest.base_model, manifest.adapter_dir
    lineage = {
        "run_id": manifest.run_id,
        "dataset_version": manifest.dataset_version,
        "n": len(pairs),
        "eval_items_hash": stable_hash(sorted(p.id for p in pairs), 12),
        # Workspace-relative (a report is read on other machines, and in the UI).
        "base_model": ws.relative(base_model),
        "adapter": ws.relative(adapter),
        "adapter_hash": adapter_hash(adapter),
        "backend": backend,
        "backend_why": why,
        "max_new_tokens": cfg.max_new_tokens,
        "system_prompt_hash": stable_hash(manifest.config["system_prompt"], 12),
        "judge": {
            "enabled": judged is not None,
            "model": judge_model,
            "note": note,
            "prompt_versions": prompt_versions,
        },
        "champion_before": champ_id,
    }
    metrics = {
        "headline": first_line,
        # base, tuned, ci95 and pairwise are the knowledge probe's: the headline probe.
        "probe": KNOWLEDGE,
        "base": knowledge["base"],
        "tuned": knowledge["tuned"],
        "pairwise": pairwise,
        "ci95": ci95,
        "knowledge_lift": lift,
        "probes": probes,
        "degenerate": {side: shape[side].as_dict() for side in SIDES},
        "promoted": verdict.promoted,
        "n": len(pairs),
        "dataset_version": manifest.dataset_version,
        "adapter": adapter,
        "base_model": base_model,
        "champion": knowledge.get("champion"),
        "errors": {side: {c: v["count"] for c, v in errors[side].items()} for side in SIDES},
        "lineage": lineage,
    }
    rows = [
        {
            "id": p.id,
            "probe": p.probe,
            "question": p.question,
            "reference": p.answer,
            "chunk_id": p.chunk_id,
            "taught_by": p.taught_by,
            "base": texts["base"][i],
            "tuned": texts["tuned"][i],
            "truncated": {s: answers[s][i].truncated for s in SIDES},
            "scores": {s: scores[s][i] for s in SIDES},
            "judge": {
                "reason": {
                    s: (g.reason if (g := judged.grades[s][i]) else "") if judged else ""
                    for s in SIDES
                },
                "verdicts": [v.winner if v else None for v in judged.verdicts[i]] if judged else [],
                "outcome": outcomes[i],
            },
            "errors": {s: flags[s][i] for s in SIDES},
        }
        for i, p in enumerate(pairs)
    ]
    out = run_dir / "eval"
    plot = plot_scores(rows, out / "scores.png")
    regression = regression_check(
        base_model, adapter, cfg.regression_data, out / "harness", cfg.regression_limit
    )
    metrics["regression"] = regression
    dataset_manifest = Path(manifest.dataset_dir) / "manifest.json"
    rules = read_json(dataset_manifest).get("eval", {}).get("probes", {})
    extra = {
        "rules": {probe: r.get("decontamination") for probe, r in rules.items()},
        "lineage": lineage,
        "errors": errors,
        "plot": "scores.png",
        "plot_metric": plot,
        "gate": {"champion_before": champ_id, "checks": verdict.checks},
        "sources_missing": len({p.chunk_id for p in pairs} - sources.keys()),
        "regression_md": regression_markdown(regression),
    }
    report = render_report(metrics, rows, extra, METRICS)
    write_jsonl(out / "predictions.jsonl", rows)
    write_csv(rows, out / "predictions.csv", METRICS)
    write_json(out / "metrics.json", metrics)
    write_json(
        out / "manifest.json",
        {
            **lineage,
            "config": cfg.model_dump(mode="json"),
            "cache": {"hits": cache.hits, "misses": cache.misses},
        },
    )
    atomic_write_text(out / "report.md", report)
    add_evaluation_to_card(run_dir, metrics)
    return {"report": str(out / "report.md"), "metrics": metrics, "markdown": report}


class Evaluated(TypedDict):
    """What evaluate returns, and the evaluate flow (a plain dict, checked by mypy)."""

    report: str
    metrics: dict[str, Any]


@task(name="evaluate")
def evaluate(
    run_dir: str, cfg: EvaluateConfig, workspace: str, teacher: TeacherConfig | None = None
) -> Evaluated:
    """Evaluate fine-tuning run ``run_dir`` against its base; return report path and metrics.

    ``teacher`` is the judge's endpoint (None or extractive: no judge).
    """
    result = evaluate_run(Path(run_dir), cfg, Workspace(Path(workspace)), teacher)
    if in_prefect_run():
        from prefect.artifacts import create_markdown_artifact

        ws = Workspace(Path(workspace))
        create_markdown_artifact(
            key=artifact_key("evaluation-report", ws),
            markdown=embed_image(result["markdown"], Path(result["report"]).parent),
            description=f"base vs tuned on the eval split, run {Path(run_dir).name}",
        )
    return {"report": result["report"], "metrics": result["metrics"]}
