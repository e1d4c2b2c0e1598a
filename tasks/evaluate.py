"""Evaluate a fine-tuning run: base vs tuned answers on the eval split of its dataset.

Answers are generated greedily with transformers on CPU (or CUDA when present), in left-padded
batches, stopping at ``<|eot_id|>``. Scores are exact match (SQuAD-style normalisation) and
ROUGE-L F1 (``rouge_score``), per item and averaged. Not covered here: embedding similarity,
teacher-as-judge and vLLM serving; ROUGE-L's tokenizer keeps only ``[a-z0-9]``, so it scores
non-Latin text as empty.

Writes ``runs/<run-id>/eval/``: report.md, metrics.json, manifest.json, predictions.jsonl.

    python -c "from tasks.evaluate import evaluate; from faqforge.config import EvaluateConfig; \
print(evaluate.fn('.faqforge/runs/ft-0123abcd4567', EvaluateConfig(), '.faqforge'))"
"""

from __future__ import annotations

import functools
import re
import string
from pathlib import Path
from typing import Any

from prefect import task

from faqforge.chat import prompt_messages
from faqforge.config import EvaluateConfig
from faqforge.records import QAPair
from faqforge.storage import atomic_write_text, read_json, read_records, write_json, write_jsonl
from faqforge.tasking import in_prefect_run

METRICS = ("exact_match", "rouge_l")
REPORT_ROWS = 20


def generate_answers(
    model_path: str,
    adapter_dir: str | None,
    questions: list[str],
    cfg: EvaluateConfig,
    system_prompt: str,
) -> list[str]:
    """Greedy answers to ``questions`` from the base model, or base + LoRA adapter."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from faqforge.models import LOAD_KWARGS

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir or model_path, trust_remote_code=False)
    tokenizer.padding_side = "left"  # decoder-only: new tokens must follow the prompt directly
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32, **LOAD_KWARGS)
    if adapter_dir:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir)
    model.to(device).eval()
    stop_ids = [tokenizer.convert_tokens_to_ids("<|eot_id|>"), tokenizer.eos_token_id]

    answers: list[str] = []
    for start in range(0, len(questions), cfg.batch_size):
        chunk = questions[start : start + cfg.batch_size]
        batch = [prompt_messages(q, system_prompt) for q in chunk]
        inputs = tokenizer.apply_chat_template(
            batch,
            add_generation_prompt=True,
            padding=True,
            return_dict=True,
            return_tensors="pt",
        ).to(device)
        with torch.inference_mode():
            out = model.generate(
                **inputs,
                do_sample=False,
                max_new_tokens=cfg.max_new_tokens,
                eos_token_id=[i for i in stop_ids if i is not None],
                pad_token_id=tokenizer.pad_token_id,
            )
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        answers += [t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    return answers


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: ``"The  Cat!"`` → ``"cat"``."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(pred: str, ref: str) -> float:
    """1.0 when the normalised strings are equal: ``exact_match("the cat.", "Cat") == 1.0``."""
    return float(normalize_answer(pred) == normalize_answer(ref))


@functools.cache
def _rouge_scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(pred: str, ref: str) -> float:
    """ROUGE-L F1 of the longest common subsequence (Porter-stemmed words)."""
    return _rouge_scorer().score(ref, pred)["rougeL"].fmeasure


def score_answers(preds: list[str], refs: list[str]) -> dict[str, float]:
    """Mean exact match and ROUGE-L over aligned predictions and references."""
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predictions for {len(refs)} references")
    if not refs:
        return {name: 0.0 for name in METRICS}
    return {
        "exact_match": sum(map(exact_match, preds, refs)) / len(refs),
        "rouge_l": sum(map(rouge_l, preds, refs)) / len(refs),
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip() or "∅"


def render_report(metrics: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """Markdown: a base-vs-tuned metric table, then the first answers side by side."""
    lines = [
        f"# Evaluation of `{metrics['adapter']}`",
        "",
        f"Base model `{metrics['base_model']}`; dataset version `{metrics['dataset_version']}`; "
        f"{metrics['n']} eval questions.",
        "",
        "| metric | base | tuned | delta |",
        "|---|---:|---:|---:|",
    ]
    for name in METRICS:
        base, tuned = metrics["base"][name], metrics["tuned"][name]
        lines.append(f"| {name} | {base:.3f} | {tuned:.3f} | {tuned - base:+.3f} |")
    lines += [
        "",
        f"## Answers (first {min(len(rows), REPORT_ROWS)} of {len(rows)})",
        "",
        "| question | reference | base | tuned |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {_cell(r['question'])} | {_cell(r['reference'])} | {_cell(r['base'])} "
        f"| {_cell(r['tuned'])} |"
        for r in rows[:REPORT_ROWS]
    ]
    return "\n".join(lines) + "\n"


def evaluate_run(run_dir: Path, cfg: EvaluateConfig) -> dict[str, Any]:
    """Score a run's base and tuned model on its eval split; write ``run_dir/eval/``."""
    manifest = read_json(run_dir / "manifest.json")
    pairs = read_records(Path(manifest["dataset_dir"]) / "eval.jsonl", QAPair)
    pairs = pairs[: cfg.max_items] if cfg.max_items else pairs
    questions = [p.question for p in pairs]
    refs = [p.answer for p in pairs]
    system_prompt = manifest["config"]["system_prompt"]
    base_model, adapter = manifest["base_model"], manifest["adapter_dir"]

    base = generate_answers(base_model, None, questions, cfg, system_prompt)
    tuned = generate_answers(base_model, adapter, questions, cfg, system_prompt)
    lineage = {
        "dataset_version": manifest["dataset_version"],
        "adapter": adapter,
        "base_model": base_model,
    }
    metrics = {
        "base": score_answers(base, refs),
        "tuned": score_answers(tuned, refs),
        "n": len(pairs),
        **lineage,
    }
    rows = [
        {
            "id": p.id,
            "question": p.question,
            "reference": p.answer,
            "base": b,
            "tuned": t,
            "rouge_l": {"base": rouge_l(b, p.answer), "tuned": rouge_l(t, p.answer)},
            "exact_match": {"base": exact_match(b, p.answer), "tuned": exact_match(t, p.answer)},
        }
        for p, b, t in zip(pairs, base, tuned, strict=True)
    ]
    out = run_dir / "eval"
    report = render_report(metrics, rows)
    write_jsonl(out / "predictions.jsonl", rows)
    write_json(out / "metrics.json", metrics)
    write_json(
        out / "manifest.json",
        {**lineage, "run_id": manifest["run_id"], "config": cfg.model_dump(mode="json")},
    )
    atomic_write_text(out / "report.md", report)
    return {"report": str(out / "report.md"), "metrics": metrics, "markdown": report}


@task(name="evaluate")
def evaluate(run_dir: str, cfg: EvaluateConfig, workspace: str) -> dict[str, Any]:
    """Evaluate fine-tuning run ``run_dir`` against its base; return report path and metrics.

    ``workspace`` is unused beyond keeping the signature of every stage task.
    """
    result = evaluate_run(Path(run_dir), cfg)
    if in_prefect_run():
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(
            key="evaluation-report",
            markdown=result["markdown"],
            description=f"base vs tuned on the eval split, run {Path(run_dir).name}",
        )
    return {"report": result["report"], "metrics": result["metrics"]}
