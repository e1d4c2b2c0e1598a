"""One training run from a spec file, in this process or under ``accelerate launch``.

``run_training`` trains (or resumes) and then, on the main process only, writes the loss
curve, the model card and, with ``merge: true``, the merged model. With more than one CUDA
device the same function runs once per GPU through ``accelerate launch`` (data parallel);
the spec file carries everything, so every process trains the same thing:

    python -m tasks.training.launch runs/ft-0123abcd4567/train_spec.json
    accelerate launch --num_processes 2 -m tasks.training.launch runs/…/train_spec.json
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from faqforge.config import FinetuneConfig
from faqforge.records import KNOWLEDGE, EvalItem, QAPair
from faqforge.storage import read_json, read_records, write_json


@dataclass(frozen=True)
class TrainSpec:
    run_id: str
    base_model: str
    dataset: dict[str, Any]  # version, content_hash, dir
    run_dir: str
    cache_dir: str
    config: dict[str, Any] = field(default_factory=dict)
    resume: bool = False

    def save(self, path: Path) -> Path:
        write_json(path, asdict(self))
        return path

    @classmethod
    def load(cls, path: Path) -> TrainSpec:
        return cls(**read_json(path))


def launch_command(spec_path: Path, devices: int, mixed_precision: str = "bf16") -> list[str]:
    """``accelerate launch`` for ``devices`` GPUs on this machine, running this module."""
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        str(devices),
        "--num_machines",
        "1",
        "--mixed_precision",
        mixed_precision,
        "--dynamo_backend",
        "no",
        "-m",
        "tasks.training.launch",
        str(spec_path),
    ]


def loss_items(items: list[EvalItem]) -> list[QAPair]:
    """What eval loss is measured on while training: the knowledge probe (held-out phrasings
    of trained facts, the items that show learning), or every item when there is none."""
    knowledge = [i for i in items if i.probe == KNOWLEDGE]
    return list(knowledge or items)


def run_training(spec: TrainSpec) -> dict[str, Any]:
    """Train per the spec; the main process then writes curve, card and merged model."""
    from accelerate import PartialState

    from tasks.training import outputs
    from tasks.training.recipe import train_adapter

    cfg = FinetuneConfig.model_validate(spec.config)
    data_dir, run_dir = Path(spec.dataset["dir"]), Path(spec.run_dir)
    metrics = train_adapter(
        spec.base_model,
        read_records(data_dir / "train.jsonl", QAPair),
        loss_items(read_records(data_dir / "eval.jsonl", EvalItem)),
        cfg,
        run_dir,
        resume=spec.resume,
        cache_dir=Path(spec.cache_dir),
    )
    if PartialState().is_main_process:
        history = read_json(run_dir / "trainer_state.json")["log_history"]
        outputs.plot_loss_curve(history, run_dir / "loss_curve.png", f"{spec.run_id}")
        # The card and adapter_config.json name the base by its portable identity (the
        # config's `builtin:tiny-llama`, a packaged model or a hub name), not this machine's
        # folder; faqforge resolves it when loading (faqforge.models.resolve_base_model).
        outputs.name_base_model(run_dir / "adapter", cfg.base_identity)
        portable = {**spec.dataset, "dir": f"datasets/{spec.dataset['version']}"}
        card = outputs.model_card(spec.run_id, cfg.base_identity, portable, cfg, metrics)
        outputs.write_model_card(run_dir, card)
        if cfg.merge:
            outputs.merge_adapter(spec.base_model, run_dir / "adapter", run_dir / "merged")
    return metrics


if __name__ == "__main__":
    run_training(TrainSpec.load(Path(sys.argv[1])))
