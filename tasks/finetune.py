"""Fine-tune the student on a published dataset: a LoRA (CPU) or QLoRA (CUDA) adapter.

``train_adapter`` is the recipe, readable top to bottom: chat-formatted ``messages`` data,
TRL's ``SFTTrainer`` with a PEFT ``LoraConfig`` and assistant-only loss (prompt tokens get
label -100), optional 4-bit NF4 quantisation, then the adapter and tokenizer are saved.
``finetune`` is the Prefect task: one run folder per (dataset version, config), skipped when
its adapter is already complete. Only single-turn QA pairs; no packing, no multi-GPU wiring
(accelerate's launcher handles that without code changes here).

Run folder (``runs/<run-id>/``)::

    manifest.json        dataset version + dir, base model, config, metrics, adapter path
    train_metrics.json   losses, steps, runtime, trainable parameters
    adapter/             adapter_model.safetensors, adapter_config.json, tokenizer, _SUCCESS
    eval/                written by tasks.evaluate

    python -c "from tasks.finetune import finetune; \
print(finetune.fn('.faqforge/datasets/v1', FinetuneConfig(), '.faqforge'))"
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from prefect import task

from faqforge.chat import to_messages
from faqforge.config import FinetuneConfig, stable_hash
from faqforge.records import QAPair
from faqforge.storage import Workspace, read_json, read_records, write_json
from faqforge.tasking import in_prefect_run

log = logging.getLogger(__name__)

SUCCESS = "_SUCCESS"


def use_4bit(cfg: FinetuneConfig, cuda: bool) -> bool:
    """``4bit`` always quantises; ``auto`` only where CUDA makes QLoRA worth it."""
    return cfg.quantization == "4bit" or (cfg.quantization == "auto" and cuda)


def messages_dataset(pairs: list[QAPair], system_prompt: str) -> Any:
    """A ``datasets.Dataset`` with one ``messages`` conversation per pair."""
    from datasets import Dataset

    return Dataset.from_list(
        [{"messages": to_messages(p.question, p.answer, system_prompt)} for p in pairs]
    )


def build_trainer(
    base_model: str, train: list[QAPair], eval: list[QAPair], cfg: FinetuneConfig, out_dir: Path
) -> Any:
    """An ``SFTTrainer`` with the LoRA adapter attached and both splits tokenised.

    Its ``train_dataset`` rows carry ``labels`` with -100 on every prompt token
    (``assistant_only_loss``), so only answers and their ``<|eot_id|>`` are learned.
    """
    import torch
    from peft import LoraConfig, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    from trl import SFTConfig, SFTTrainer

    from faqforge.models import LOAD_KWARGS

    cuda = torch.cuda.is_available()
    quantized = use_4bit(cfg, cuda)
    # Checkpointing saves GPU memory on real models; on CPU it only costs time (5x for QLoRA).
    checkpointing = cuda
    tokenizer = AutoTokenizer.from_pretrained(base_model, trust_remote_code=False)
    load: dict[str, Any] = {"dtype": torch.bfloat16 if cuda else torch.float32, **LOAD_KWARGS}
    if quantized:
        load["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    model = AutoModelForCausalLM.from_pretrained(base_model, **load)
    if quantized:
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )

    peft_config = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.target_modules,
        modules_to_save=list(cfg.modules_to_save) or None,
        task_type="CAUSAL_LM",
    )
    args = SFTConfig(
        output_dir=str(Path(out_dir) / "trainer"),
        max_length=cfg.max_length,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        seed=cfg.seed,
        assistant_only_loss=True,
        bf16=cuda,  # SFTConfig defaults to bf16, which is 2-3x slower on CPU
        use_cpu=not cuda,
        gradient_checkpointing=checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        eval_strategy="no",  # train_adapter evaluates once before and once after training
        logging_steps=max(1, cfg.max_steps // 20),
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
    )
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=messages_dataset(train, cfg.system_prompt),
        eval_dataset=messages_dataset(eval, cfg.system_prompt),
        processing_class=tokenizer,
        peft_config=peft_config,
    )


def train_adapter(
    base_model: str, train: list[QAPair], eval: list[QAPair], cfg: FinetuneConfig, out_dir: Path
) -> dict[str, Any]:
    """Train a LoRA adapter on ``train``; save it to ``out_dir/adapter``; return its metrics.

    Metrics: ``eval_loss_base`` (before training), ``eval_loss``, ``train_loss`` (mean over
    steps), ``train_loss_first``/``train_loss_last`` (first/last logged), ``steps``,
    ``runtime_s``, ``steps_per_s``, ``trainable_params``, ``total_params``, ``quantized``.
    """
    out_dir = Path(out_dir)
    trainer = build_trainer(base_model, train, eval, cfg, out_dir)
    eval_before = trainer.evaluate()["eval_loss"]
    result = trainer.train()
    eval_after = trainer.evaluate()["eval_loss"]

    adapter_dir = out_dir / "adapter"
    trainer.model.save_pretrained(adapter_dir)
    trainer.processing_class.save_pretrained(adapter_dir)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    trainable, total = trainer.model.get_nb_trainable_parameters()
    metrics = {
        "eval_loss_base": eval_before,
        "eval_loss": eval_after,
        "train_loss": result.training_loss,
        "train_loss_first": losses[0] if losses else None,
        "train_loss_last": losses[-1] if losses else None,
        "steps": result.global_step,
        "runtime_s": round(result.metrics["train_runtime"], 3),
        "steps_per_s": round(result.global_step / result.metrics["train_runtime"], 3),
        "trainable_params": trainable,
        "total_params": total,
        "quantized": bool(getattr(trainer.model, "is_loaded_in_4bit", False)),
        "train_pairs": len(train),
        "eval_pairs": len(eval),
    }
    write_json(out_dir / "train_metrics.json", metrics)
    log.info("trained adapter %s: %s", adapter_dir, metrics)
    return metrics


def run_id(dataset_version: str, cfg: FinetuneConfig) -> str:
    """Same dataset version and config → same run id, so a re-run finds the finished adapter.

    ``cfg.base_model`` names the base; the built-in model's path is left out so that moving
    the workspace does not change the id.
    """
    return "ft-" + stable_hash(
        {"dataset": dataset_version, "config": cfg.model_dump(mode="json")}, length=12
    )


def train_run(dataset_dir: Path, cfg: FinetuneConfig, ws: Workspace) -> dict[str, Any]:
    """Train into ``runs/<run-id>/`` unless its adapter is complete; return the run summary."""
    from faqforge.models import resolve_base_model

    manifest = _dataset_manifest(dataset_dir)
    version = str(manifest["version"])
    rid = run_id(version, cfg)
    run_dir = ws.runs / rid
    adapter_dir = run_dir / "adapter"
    base_model = resolve_base_model(cfg, ws)
    if (adapter_dir / SUCCESS).is_file():
        log.info("run %s already has a complete adapter; skipping training", rid)
        metrics = read_json(run_dir / "train_metrics.json")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        # Train into a staging folder and rename: a half-written adapter never looks complete.
        staging = Path(tempfile.mkdtemp(dir=run_dir, prefix=".staging-"))
        try:
            train = read_records(dataset_dir / "train.jsonl", QAPair)
            eval_ = read_records(dataset_dir / "eval.jsonl", QAPair)
            metrics = train_adapter(base_model, train, eval_, cfg, staging)
            (staging / "adapter" / SUCCESS).write_text(rid + "\n")
            shutil.rmtree(adapter_dir, ignore_errors=True)  # an incomplete earlier attempt
            os.replace(staging / "train_metrics.json", run_dir / "train_metrics.json")
            os.rename(staging / "adapter", adapter_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    write_json(
        run_dir / "manifest.json",
        {
            "run_id": rid,
            "dataset_version": version,
            "dataset_content_hash": manifest.get("content_hash"),
            "dataset_dir": str(dataset_dir),
            "base_model": base_model,
            "config": cfg.model_dump(mode="json"),
            "metrics": metrics,
            "adapter_dir": str(adapter_dir),
        },
    )
    ws.write_pointer("runs/LATEST", rid)
    return {
        "run_id": rid,
        "run_dir": str(run_dir),
        "adapter_dir": str(adapter_dir),
        "dataset_version": version,
        "metrics": metrics,
    }


def _dataset_manifest(dataset_dir: Path) -> dict[str, Any]:
    path = dataset_dir / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no dataset manifest; pass a published dataset folder (datasets/<version>/)"
        )
    manifest = read_json(path)
    if "version" not in manifest:
        raise ValueError(f"{path}: manifest has no 'version'; was the dataset published?")
    return manifest


def metrics_markdown(summary: dict[str, Any]) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in sorted(summary["metrics"].items()))
    return (
        f"# Fine-tune run `{summary['run_id']}`\n\n"
        f"Dataset version `{summary['dataset_version']}`; adapter `{summary['adapter_dir']}`.\n\n"
        f"| metric | value |\n|---|---|\n{rows}\n"
    )


@task(name="finetune")
def finetune(dataset_dir: str, cfg: FinetuneConfig, workspace: str) -> dict[str, Any]:
    """Train (or find) the adapter for this dataset version and config; return its run summary."""
    summary = train_run(Path(dataset_dir), cfg, Workspace(Path(workspace)))
    if in_prefect_run():
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(
            key="finetune-metrics",
            markdown=metrics_markdown(summary),
            description=f"training metrics of run {summary['run_id']}",
        )
    return summary
