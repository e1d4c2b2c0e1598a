"""Trainer callbacks: what a person watching the run sees while it trains, and its limits.

``SampleGenerations`` answers a few eval questions greedily at every evaluation (the first
one, before training, shows the base model), so a run's progress reads as answers, not only
losses. ``RunLog`` sends each logged metric line to the Prefect run's log instead of stdout.
``TimeLimit`` ends training at ``finetune.max_train_seconds``; ``ArgsAsJson`` replaces the
pickled ``training_args.bin`` of each checkpoint with JSON.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from faqforge.chat import prompt_messages
from faqforge.config import FinetuneConfig
from faqforge.progress import eta_text
from faqforge.records import QAPair
from faqforge.storage import write_jsonl
from faqforge.tasking import in_prefect_run


def greedy_answers(model: Any, tokenizer: Any, questions: list[str], system: str, n: int) -> list:
    """Greedy answers of ``model`` (left-padded batch, stops at the template's stop token)."""
    import torch

    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # new tokens follow prompts
    try:
        inputs = tokenizer.apply_chat_template(
            [prompt_messages(q, system) for q in questions],
            add_generation_prompt=True,
            padding=True,
            return_dict=True,
            return_tensors="pt",
        ).to(model.device)
    finally:
        tokenizer.padding_side = side
    # TRL keeps QLoRA's trainable weights in bf16 (as the QLoRA paper does); generate() has no
    # autocast of its own, so fp32 hidden states would meet a bf16 lm_head copy on CPU.
    bf16 = any(p.dtype == torch.bfloat16 for p in model.parameters() if p.requires_grad)
    with torch.inference_mode(), torch.autocast(model.device.type, torch.bfloat16, enabled=bf16):
        out = model.generate(
            **inputs, do_sample=False, max_new_tokens=n, pad_token_id=tokenizer.pad_token_id
        )
    new = out[:, inputs["input_ids"].shape[1] :]
    return [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]


class SampleGenerations(TrainerCallback):
    """At each evaluation: ``samples/step-<N>.jsonl`` with question, reference and answer."""

    def __init__(self, pairs: list[QAPair], cfg: FinetuneConfig, tokenizer: Any, out_dir: Path):
        self.pairs, self.cfg, self.tokenizer, self.out_dir = pairs, cfg, tokenizer, out_dir

    def on_evaluate(self, args: Any, state: Any, control: Any, model: Any = None, **_: Any) -> None:
        if not self.pairs or model is None or not state.is_world_process_zero:
            return
        was_training = model.training
        model.eval()
        try:
            answers = greedy_answers(
                model,
                self.tokenizer,
                [p.question for p in self.pairs],
                self.cfg.system_prompt,
                self.cfg.sample_max_new_tokens,
            )
        finally:
            model.train(was_training)
        rows = [
            {
                "step": state.global_step,
                "id": p.id,
                "question": p.question,
                "reference": p.answer,
                "answer": a,
            }
            for p, a in zip(self.pairs, answers, strict=True)
        ]
        write_jsonl(self.out_dir / f"step-{state.global_step:06d}.jsonl", rows)


class RunLog(TrainerCallback):
    """Each ``on_log`` line (loss, lr, eval loss) into the Prefect run's log."""

    def __init__(self, logger: Any):
        self.logger = logger
        self.start: tuple[float, int] | None = None  # (time, step) when training began

        self.artifact: Any = None  # the Prefect run's progress artifact

    def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        self.start = (time.monotonic(), state.global_step)  # a resumed run starts mid-way
        if state.is_world_process_zero and in_prefect_run():
            from prefect.artifacts import create_progress_artifact

            self.artifact = create_progress_artifact(
                100.0 * state.global_step / max(state.max_steps, 1),
                description=f"training: step {state.global_step}/{state.max_steps}",
            )

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **_: Any) -> None:
        if state.is_world_process_zero and logs:
            shown = ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in logs.items()
            )
            if not state.max_steps:  # the base model's eval, before training starts
                self.logger.info("before training: %s", shown)
                return
            began, first = self.start or (time.monotonic(), 0)
            done, left = state.global_step - first, state.max_steps - first
            eta = eta_text(time.monotonic() - began, done, left)
            self.logger.info(
                "step %d/%d (ETA %s): %s", state.global_step, state.max_steps, eta, shown
            )
            if self.artifact is not None:
                from prefect.artifacts import update_progress_artifact

                update_progress_artifact(
                    self.artifact,
                    100.0 * state.global_step / max(state.max_steps, 1),
                    description=f"training: step {state.global_step}/{state.max_steps}, ETA {eta}",
                )


def log_to_prefect_run(trainer: Any) -> None:
    """Inside a Prefect run, its log replaces the trainer's own printing of each log line."""
    if in_prefect_run():
        from prefect import get_run_logger
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(RunLog(get_run_logger()))


class TimeLimit(TrainerCallback):
    """Stop after ``max_seconds`` of training (checked after each optimiser step).

    ``stopped`` tells the caller the ceiling ended the run, so its metrics and card can say
    so; the adapter trained so far is saved as usual. Under several processes the main one's
    clock decides for all (a process stopping alone would hang the others' all-reduce).
    """

    def __init__(self, max_seconds: float):
        self.max_seconds = max_seconds
        self.started = 0.0
        self.stopped = False

    def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        self.started = time.monotonic()

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if _main_process_says(time.monotonic() - self.started >= self.max_seconds):
            self.stopped = True
            control.should_training_stop = True


def _main_process_says(flag: bool) -> bool:
    from accelerate import PartialState

    state = PartialState()
    if state.num_processes == 1:
        return flag
    from accelerate.utils import broadcast_object_list

    return bool(broadcast_object_list([flag], from_process=0)[0])


ARGS_PICKLE = "training_args.bin"


def args_as_json(folder: Path, args: Any) -> None:
    """``training_args.bin`` (``torch.save`` of the whole arguments object, a pickle that
    unpickling would execute) → ``training_args.json``, under ``folder`` at any depth.

    Nothing reads the pickle back: resuming loads the optimizer, scheduler and RNG files, and
    transformers 5 loads those with ``torch.load(..., weights_only=True)`` (trainer.py,
    ``_load_optimizer_and_scheduler`` / ``_load_rng_state``), which refuses arbitrary objects.
    """
    for pickled in folder.rglob(ARGS_PICKLE):
        (pickled.parent / "training_args.json").write_text(args.to_json_string())
        pickled.unlink()


class ArgsAsJson(TrainerCallback):
    """After each checkpoint is written: its training arguments as JSON, not a pickle."""

    def on_save(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if state.is_world_process_zero:
            args_as_json(Path(args.output_dir), args)
