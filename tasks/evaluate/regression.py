"""General-ability regression check: did domain fine-tuning cost the model what it knew?

Runs lm-evaluation-harness (``pip install faqforge[harness]``) multiple-choice tasks on base and
base + adapter, from local ARC-format JSONL files only (``evaluate.regression_data``: task name
→ file with ``question``, ``choices {text, label}``, ``answerKey``), nothing downloaded. Each
file becomes a harness task mirroring ``arc_easy`` (``Question: …\\nAnswer:``, accuracy and
length-normalised accuracy). Skipped, with the reason, when nothing is configured, a file is
missing or the harness is not installed.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

ARC_TASK = {
    "dataset_path": "json",
    "test_split": "test",
    "output_type": "multiple_choice",
    "doc_to_text": "Question: {{question}}\nAnswer:",
    "doc_to_target": "{{choices.label.index(answerKey)}}",
    "doc_to_choice": "{{choices.text}}",
    "metric_list": [
        {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
        {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
    ],
}


def skip_reason(data: dict[str, Path]) -> str | None:
    """Why the check cannot run, or None when it can."""
    if not data:
        return "no local dataset configured (evaluate.regression_data)"
    missing = [f"{name}: {path}" for name, path in data.items() if not Path(path).is_file()]
    if missing:
        return "dataset file not found: " + ", ".join(missing)
    if importlib.util.find_spec("lm_eval") is None:
        return "lm-evaluation-harness is not installed (pip install 'faqforge[harness]')"
    return None


def write_tasks(data: dict[str, Path], folder: Path) -> list[str]:
    """One harness task YAML per dataset file in ``folder``; returns the task names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for name, path in data.items():
        task = f"faqforge_{name}"
        spec = {
            **ARC_TASK,
            "task": task,
            "dataset_kwargs": {"data_files": {"test": str(Path(path).resolve())}},
        }
        # JSON is valid YAML; the harness reads *.yaml files from include_path.
        (folder / f"{task}.yaml").write_text(json.dumps(spec, indent=1))
        names.append(task)
    return names


def run_harness(
    model_path: str, adapter_dir: str | None, tasks: list[str], include: Path, limit: int | None
) -> dict[str, dict[str, float]]:
    """``{task: {"acc": x, "acc_norm": y}}`` for the base model, or base + adapter."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    args: dict[str, Any] = {"pretrained": model_path, "dtype": "float32", "device": "cpu"}
    if adapter_dir:
        args["peft"] = adapter_dir
    out = lm_eval.simple_evaluate(
        model="hf",
        model_args=args,
        tasks=tasks,
        limit=limit,
        batch_size=8,
        task_manager=TaskManager(include_path=str(include)),
        log_samples=False,
    )
    return {
        task: {
            m: float(v)
            for k, v in res.items()
            if (m := k.split(",")[0]) in ("acc", "acc_norm") and isinstance(v, int | float)
        }
        for task, res in out["results"].items()
    }


def regression_check(
    model_path: str, adapter_dir: str, data: dict[str, Path], folder: Path, limit: int | None
) -> dict[str, Any]:
    """``{"skipped": reason}`` or ``{"base": {...}, "tuned": {...}}`` per harness task."""
    if (reason := skip_reason(data)) is not None:
        return {"skipped": reason}
    tasks = write_tasks(data, folder)
    return {
        "base": run_harness(model_path, None, tasks, folder, limit),
        "tuned": run_harness(model_path, adapter_dir, tasks, folder, limit),
    }


def regression_markdown(result: dict[str, Any]) -> str:
    if "skipped" in result:
        return f"Skipped: {result['skipped']}."
    lines = ["| task | metric | base | tuned | delta |", "|---|---|---:|---:|---:|"]
    for task, scores in result["base"].items():
        for metric, b in scores.items():
            t = result["tuned"][task][metric]
            lines.append(f"| {task} | {metric} | {b:.3f} | {t:.3f} | {t - b:+.3f} |")
    return "\n".join(lines)
