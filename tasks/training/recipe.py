"""The SFT recipe, top to bottom: preflight estimate, tokenised data, model (4-bit or not),
LoRA adapter, TRL ``SFTTrainer``, train (or resume), save.

CPU and CUDA differ only where they must: on CUDA bf16 compute and gradient checkpointing by
default, QLoRA under ``quantization: auto``, each process's 4-bit model pinned to its own GPU
under ``accelerate launch``; on CPU fp32, no checkpointing (it only costs time there).
``full=True`` trains every weight without an adapter (the benchmark's baseline only).

Nothing written is a pickle but the checkpoints' optimizer/scheduler/RNG state, which
transformers loads with ``weights_only=True`` (see ``callbacks.args_as_json``).
Writes into ``out_dir``: ``trainer/checkpoint-N/`` (every ``save_steps``), ``adapter/``
(safetensors + tokenizer + chat template), ``trainer_state.json``, ``train_metrics.json``,
``samples/step-N.jsonl``, and ``tensorboard/`` with ``report_to: [tensorboard]``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from faqforge.config import FinetuneConfig
from faqforge.records import QAPair
from faqforge.storage import write_json
from tasks.training.estimate import preflight, target_modules

log = logging.getLogger(__name__)


def use_4bit(cfg: FinetuneConfig, cuda: bool) -> bool:
    """``4bit`` always quantises; ``auto`` only where CUDA makes QLoRA worth it."""
    return cfg.quantization == "4bit" or (cfg.quantization == "auto" and cuda)


def use_checkpointing(cfg: FinetuneConfig, cuda: bool) -> bool:
    return cuda if cfg.gradient_checkpointing is None else cfg.gradient_checkpointing


def load_model(base_model: str, cfg: FinetuneConfig, *, cuda: bool, quantized: bool) -> Any:
    """The base model, NF4 4-bit with double quantisation and bf16 compute when ``quantized``."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from faqforge.models import LOAD_KWARGS

    load: dict[str, Any] = {"dtype": torch.bfloat16 if cuda else torch.float32, **LOAD_KWARGS}
    if cfg.attn_implementation:
        load["attn_implementation"] = cfg.attn_implementation
    if quantized:
        load["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        if cuda:  # under `accelerate launch`, each process quantises onto its own GPU
            from accelerate import PartialState

            load["device_map"] = {"": PartialState().local_process_index}
    model = AutoModelForCausalLM.from_pretrained(base_model, **load)
    if quantized:
        model = prepare_kbit(model, use_checkpointing(cfg, cuda))
    return model


def prepare_kbit(model: Any, checkpointing: bool) -> Any:
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(
        model,
        use_gradient_checkpointing=checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
    )


def lora_config(cfg: FinetuneConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=target_modules(cfg),
        modules_to_save=list(cfg.modules_to_save) or None,
        task_type="CAUSAL_LM",
    )


def sft_config(cfg: FinetuneConfig, out_dir: Path, *, cuda: bool) -> Any:
    from trl import SFTConfig

    checkpointing = use_checkpointing(cfg, cuda)
    return SFTConfig(
        output_dir=str(out_dir / "trainer"),
        max_length=cfg.max_length,
        packing=cfg.packing,
        max_steps=cfg.max_steps or -1,
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a value below 1 is a ratio
        # Length-grouped batches pad a few percent instead of half (config comment).
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        seed=cfg.seed,
        data_seed=cfg.seed,
        # Labels already carry -100 on prompt tokens (tasks.training.data), so TRL's own
        # assistant-mask pass is not needed on the pre-tokenised rows.
        assistant_only_loss=False,
        bf16=cuda,  # SFTConfig defaults to bf16, which is 2-3x slower on CPU
        use_cpu=not cuda,
        activation_checkpointing=checkpointing,  # transformers 5's name for gradient checkpointing
        activation_checkpointing_kwargs={"use_reentrant": False},
        ddp_find_unused_parameters=False,
        eval_strategy="steps",
        eval_steps=cfg.eval_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        logging_steps=max(1, min(cfg.eval_steps, (cfg.max_steps or 200) // 20)),
        include_num_input_tokens_seen="non_padding",
        report_to=list(cfg.report_to) or "none",
        disable_tqdm=True,
    )


def build_trainer(
    base_model: str,
    train: list[QAPair],
    eval_: list[QAPair],
    cfg: FinetuneConfig,
    out_dir: Path,
    *,
    cache_dir: Path | None = None,
    full: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """An ``SFTTrainer`` over tokenised rows whose labels are -100 on every prompt token, and
    the tokenisation facts (cache key, truncated and dropped rows)."""
    import torch
    from transformers import AutoTokenizer
    from trl import SFTTrainer

    from tasks.training.data import resolve_chat_template, tokenized_splits

    cuda = torch.cuda.is_available()
    quantized = use_4bit(cfg, cuda) and not full
    tokenizer = AutoTokenizer.from_pretrained(base_model, trust_remote_code=False)
    tokenizer.chat_template = resolve_chat_template(cfg.chat_template, tokenizer)
    train_ds, eval_ds, data_stats = tokenized_splits(
        train, eval_, tokenizer, tokenizer.chat_template, cfg, cache_dir
    )
    torch.manual_seed(cfg.seed)  # LoRA A initialisation
    trainer = SFTTrainer(
        model=load_model(base_model, cfg, cuda=cuda, quantized=quantized),
        args=sft_config(cfg, Path(out_dir), cuda=cuda),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=None if full else lora_config(cfg),
    )
    for callback in trainer.callback_handler.callbacks:
        if type(callback).__name__ == "TensorBoardCallback":
            # The base eval logs before train() sets its default folder: it would write to ./runs.
            callback.logging_dir = str(Path(out_dir) / "tensorboard")
    return trainer, data_stats


def last_checkpoint(trainer_dir: Path) -> Path | None:
    """The newest ``checkpoint-N`` whose trainer state was written (it is saved last)."""
    import json

    done = []
    for path in trainer_dir.glob("checkpoint-*"):
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue  # killed while saving: not a checkpoint to resume from
        done.append((int(path.name.rsplit("-", 1)[1]), path))
    return max(done)[1] if done else None


def train_adapter(
    base_model: str,
    train: list[QAPair],
    eval_: list[QAPair],
    cfg: FinetuneConfig,
    out_dir: Path,
    *,
    resume: bool = False,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Train (or resume) a LoRA adapter; save it to ``out_dir/adapter``; return its metrics.

    Metrics: ``eval_loss_base`` (before training), ``eval_loss``, ``train_loss`` (mean over
    steps), ``train_loss_first``/``train_loss_last`` (first/last logged), ``steps``,
    ``resumed_from_step``, ``runtime_s``, ``steps_per_s``, ``train_tokens`` (non-padding),
    ``trainable_params``, ``total_params``, ``quantized``, ``estimated_peak_gib`` and counts.
    """
    import torch

    from tasks.training.callbacks import (
        ArgsAsJson,
        SampleGenerations,
        TimeLimit,
        args_as_json,
        log_to_prefect_run,
    )

    out_dir = Path(out_dir)
    cuda = torch.cuda.is_available()
    estimate = preflight(
        base_model,
        cfg,
        quantized=use_4bit(cfg, cuda),
        cuda=cuda,
        checkpointing=use_checkpointing(cfg, cuda),
        devices=max(1, torch.cuda.device_count()) if cuda else 1,
    )
    trainer_dir = out_dir / "trainer"
    checkpoint = last_checkpoint(trainer_dir) if resume else None
    if checkpoint is None and trainer_dir.exists():
        log.info("%s: starting afresh; earlier checkpoints removed", trainer_dir)
        shutil.rmtree(trainer_dir)
    trainer, data_stats = build_trainer(base_model, train, eval_, cfg, out_dir, cache_dir=cache_dir)
    trainer.add_callback(
        SampleGenerations(
            eval_[: cfg.sample_questions], cfg, trainer.processing_class, out_dir / "samples"
        )
    )
    trainer.add_callback(ArgsAsJson())
    time_limit = TimeLimit(cfg.max_train_seconds) if cfg.max_train_seconds else None
    if time_limit is not None:
        trainer.add_callback(time_limit)
    log_to_prefect_run(trainer)
    # LoRA B starts at zero, so before train() loads any checkpoint this is the base model.
    eval_before = trainer.evaluate()["eval_loss"]
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    state = trainer.state
    last = [e for e in state.log_history if "eval_loss" in e and e["step"] == state.global_step]
    eval_after = last[-1]["eval_loss"] if last else trainer.evaluate()["eval_loss"]
    # train() starts a fresh log: put the base model's eval loss back at step 0 for the curve.
    state.log_history.insert(0, {"step": 0, "eval_loss": eval_before})

    losses = [e["loss"] for e in state.log_history if "loss" in e]
    trainable, total = trainer.model.get_nb_trainable_parameters()
    runtime = result.metrics["train_runtime"]
    resumed_from = int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint else 0
    metrics = {
        "eval_loss_base": eval_before,
        "eval_loss": eval_after,
        "train_loss": result.training_loss,
        "train_loss_first": losses[0] if losses else None,
        "train_loss_last": losses[-1] if losses else None,
        "steps": result.global_step,
        "resumed_from_step": resumed_from,
        "runtime_s": round(runtime, 3),
        "steps_per_s": round((result.global_step - resumed_from) / runtime, 3),
        "train_tokens": state.num_input_tokens_seen,
        "trainable_params": trainable,
        "total_params": total,
        # time_limit: finetune.max_train_seconds ended training before its steps/epochs.
        "stopped": "time_limit" if time_limit is not None and time_limit.stopped else "completed",
        "quantized": bool(getattr(trainer.model, "is_loaded_in_4bit", False)),
        "estimated_peak_gib": round(estimate.peak / 2**30, 3),
        "train_pairs": len(train),
        "eval_pairs": len(eval_),
        **{k: v for k, v in data_stats.items() if k != "cache_hit"},
    }
    if trainer.is_world_process_zero():
        adapter_dir = out_dir / "adapter"
        shutil.rmtree(adapter_dir, ignore_errors=True)
        trainer.model.save_pretrained(adapter_dir)  # safetensors
        trainer.processing_class.save_pretrained(adapter_dir)  # + chat_template.jinja
        state.save_to_json(str(out_dir / "trainer_state.json"))
        write_json(out_dir / "train_metrics.json", metrics)
        args_as_json(out_dir, trainer.args)  # a final save outside on_save, if any
    log.info("trained adapter in %s: %s", out_dir, metrics)
    return metrics
