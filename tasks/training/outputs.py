"""What a finished run leaves besides the adapter: loss curve, model card, merged model.

``loss_curve.png`` plots train and eval loss against optimiser steps (the plot teams put side
by side across runs); ``model_card.md`` (also ``adapter/README.md``, where the Hub looks) says
what the adapter is, what it was trained on and how well; ``merged/`` is base + adapter folded
into plain weights for servers without LoRA support.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from faqforge.config import FinetuneConfig
from faqforge.storage import atomic_write_text


def loss_series(log_history: list[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """``{"train": [(step, loss)], "eval": [(step, eval_loss)]}`` from a trainer state's log."""
    return {
        "train": [(e["step"], e["loss"]) for e in log_history if "loss" in e],
        "eval": [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e],
    }


def plot_loss_curve(log_history: list[dict[str, Any]], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    series = loss_series(log_history)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for name, marker in (("train", None), ("eval", "o")):
        if series[name]:
            steps, losses = zip(*series[name], strict=True)
            ax.plot(steps, losses, marker=marker, label=f"{name} loss")
    ax.set(xlabel="optimiser step", ylabel="loss", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


HYPER_PARAMETERS = (
    "quantization",
    "chat_template",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "modules_to_save",
    "max_steps",
    "epochs",
    "learning_rate",
    "lr_scheduler",
    "warmup_ratio",
    "batch_size",
    "gradient_accumulation_steps",
    "max_length",
    "packing",
    "seed",
)
CARD_METRICS = (
    "eval_loss_base",
    "eval_loss",
    "train_loss",
    "steps",
    "stopped",
    "train_tokens",
    "runtime_s",
)


def model_card(
    run_id: str,
    base_model: str,
    dataset: dict[str, Any],
    cfg: FinetuneConfig,
    metrics: dict[str, Any],
) -> str:
    """Markdown card: base model, dataset version + hash, hyper-parameters, metrics, use."""
    config = cfg.model_dump(mode="json")
    hp = "\n".join(f"| {k} | `{config[k]}` |" for k in HYPER_PARAMETERS)
    ms = "\n".join(f"| {k} | {metrics.get(k)} |" for k in CARD_METRICS)
    from faqforge.models import packaged

    model = packaged(base_model)
    hub = model.hub_name if model else base_model
    license_ = cfg.license or (model.license if model else "other")
    source = f"base_model_source: {base_model}\n" if hub != base_model else ""
    return f"""---
library_name: peft
base_model: {hub}
{source}license: {license_}
datasets: [{dataset["version"]}]
tags: [faqforge, lora, sft, trl]
---
# FAQ adapter `{run_id}`

A LoRA adapter{" trained on a 4-bit (QLoRA, NF4) base" if metrics.get("quantized") else ""} \
for `{base_model}`, fine-tuned with TRL `SFTTrainer` on faqforge QA pairs, with loss on the \
answer tokens only.

## Intended use
Answering questions about the documents the dataset was built from, phrased as the
system prompt below sets up. Not for facts outside those documents: the model was not taught
to refuse, and answers outside its training data are unreliable. Check answers that matter
against the source document named in each training pair's lineage.

System prompt: `{cfg.system_prompt}`

## Training data
Dataset version `{dataset["version"]}` (content hash `{dataset.get("content_hash")}`),
{metrics.get("train_pairs")} training and {metrics.get("eval_pairs")} eval pairs, from
`{dataset["dir"]}`.

## Hyper-parameters
| parameter | value |
|---|---|
{hp}

## Metrics
| metric | value |
|---|---|
{ms}

The loss curve is in `loss_curve.png`, sample answers per evaluation in `samples/`.
"""


def name_base_model(adapter_dir: Path, identity: str) -> None:
    """Record ``identity`` as the adapter's ``base_model_name_or_path`` (PEFT writes the
    path it was loaded from, which names the training machine's folders)."""
    path = adapter_dir / "adapter_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = identity
    atomic_write_text(path, json.dumps(config, indent=2, sort_keys=True) + "\n")


def write_model_card(run_dir: Path, card: str) -> None:
    atomic_write_text(run_dir / "model_card.md", card)
    atomic_write_text(run_dir / "adapter" / "README.md", card)


EVALUATION = "## Evaluation"


def add_evaluation_to_card(run_dir: Path, metrics: dict[str, Any]) -> None:
    """Put the evaluation's headline (and any degenerate-output warning) into the model card,
    replacing an earlier evaluation section: a card read alone must say what the model knows.
    """
    path = run_dir / "model_card.md"
    if not path.is_file():
        return
    card = path.read_text(encoding="utf-8").split(f"\n{EVALUATION}\n")[0].rstrip("\n")
    lift = metrics["knowledge_lift"]
    measured = (
        f"{lift['value']:+.3f}, 95% interval [{lift['ci95'][0]:+.3f}, {lift['ci95'][1]:+.3f}]"
        if lift["value"] is not None
        else "not measured"
    )
    verdict = "promoted to runs/CHAMPION" if metrics["promoted"] else "not promoted"
    lines = [
        "",
        EVALUATION,
        "",
        metrics["headline"],
        "",
        f"Knowledge lift ({lift['metric']}): {measured}; {verdict}. Full report: `eval/report.md`.",
    ]
    write_model_card(run_dir, card + "\n" + "\n".join(lines) + "\n")


def merge_adapter(base_model: str, adapter_dir: Path, out_dir: Path) -> Path:
    """Base + adapter as one model (safetensors) with the adapter's tokenizer, in ``out_dir``.

    The base is reloaded unquantised (bf16 on CUDA, fp32 on CPU): merging into 4-bit weights
    would round the update away.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from faqforge.models import LOAD_KWARGS

    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    base = AutoModelForCausalLM.from_pretrained(base_model, dtype=dtype, **LOAD_KWARGS)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(adapter_dir, trust_remote_code=False).save_pretrained(out_dir)
    return out_dir
