"""LoRA vs QLoRA vs full fine-tuning of the tiny student on CPU, packing off vs on, side by side.

    .venv/bin/python bench/finetune_methods.py [--steps 30] [--pairs 200]

Each of the six variants trains in its own subprocess (so peak RSS is its own) through the
pipeline's ``build_trainer`` on QA pairs cut from the bundled corpus, whose answers vary in
length the way real FAQ answers do. Reported per variant:

- tokens/s: non-padding tokens trained per wall-clock second, after a few warm-up steps, and
  per CPU-second of this process (all its threads): the steadier figure on a shared machine;
- padding waste: share of batch positions that are padding (0 with packing: TRL's best-fit
  decreasing packing fills rows with whole pairs and trains padding-free);
- peak RSS of the process (imports alone ≈ 0.52 GiB of it) next to the estimator's figure;
- loss at the last step (the same learning rate for all, so only a sanity check).

QLoRA on CPU dequantises every 4-bit weight in every forward and backward pass: it saves
memory on large models and costs speed; on this 0.5M-parameter model it saves nothing. Speed
depends on what else the machine is running: compare figures from one run only.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from faqforge.config import FinetuneConfig  # noqa: E402
from faqforge.records import QAPair  # noqa: E402

VARIANTS = [(m, p) for m in ("lora", "qlora", "full") for p in (False, True)]
WARMUP = 5


def corpus_pairs(n: int, seed: int = 0) -> list[QAPair]:
    """QA pairs from the sample corpus: a topic question, a 1–5 sentence answer."""
    text = " ".join(
        p.read_text(encoding="utf-8")
        for p in sorted((ROOT / "faqforge/sample_corpus").glob("*.md"))
    )
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", re.sub(r"[#`*\n]+", " ", text))]
    sentences = [s for s in sentences if len(s.split()) >= 5]
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        start = rng.randrange(len(sentences) - 5)
        answer = " ".join(sentences[start : start + rng.randint(1, 5)])
        topic = " ".join(sentences[start].split()[:4])
        pairs.append(
            QAPair(
                id=f"b{i}",
                question=f"What does the documentation say about {topic}?",
                answer=answer,
                doc_id="corpus",
                chunk_id=f"c{start}",
                source="sample_corpus",
                prompt_version="bench",
                teacher="bench",
            )
        )
    return pairs


def bench_config(base_model: str, packing: bool, steps: int) -> FinetuneConfig:
    return FinetuneConfig(
        base_model=base_model,
        max_steps=steps,
        packing=packing,
        max_length=256,
        batch_size=8,
        eval_steps=10 * steps,  # no evaluation, no checkpoint inside the timed steps
        save_steps=10 * steps,
        sample_questions=0,
        quantization="none",
    )


def worker(method: str, packing: bool, steps: int, n_pairs: int, model: str) -> dict:
    """Train one variant here and return its figures (run as a subprocess by ``main``)."""
    from transformers import TrainerCallback

    from tasks.training.estimate import estimate_memory, model_shape
    from tasks.training.recipe import build_trainer

    cfg = bench_config(model, packing, steps)
    if method == "qlora":
        cfg = cfg.model_copy(update={"quantization": "4bit"})
    full = method == "full"
    pairs = corpus_pairs(n_pairs)

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.marks: dict[int, tuple[float, float, int]] = {}

        def on_step_end(self, args, state, control, **_):
            now = (time.perf_counter(), time.process_time())
            self.marks[state.global_step] = (*now, state.num_input_tokens_seen)

    with tempfile.TemporaryDirectory() as tmp:
        trainer, _ = build_trainer(model, pairs, pairs[:8], cfg, Path(tmp), full=full)
        slots = real = 0
        for batch in trainer.get_train_dataloader():
            mask = batch.get("attention_mask")
            slots += batch["input_ids"].numel()
            real += int(mask.sum()) if mask is not None else batch["input_ids"].numel()
        clock = Clock()
        trainer.add_callback(clock)
        trainer.train()
        (t0, c0, n0), (t1, c1, n1) = clock.marks[WARMUP], clock.marks[steps]
        trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        loss = [e["loss"] for e in trainer.state.log_history if "loss" in e][-1]
    estimate = estimate_memory(
        model_shape(model, cfg, full),
        cfg,
        quantized=method == "qlora",
        cuda=False,
        checkpointing=False,
        full=full,
    )
    return {
        "method": method,
        "packing": packing,
        "steps_per_s": (steps - WARMUP) / (t1 - t0),
        "tokens_per_s": (n1 - n0) / (t1 - t0),
        "tokens_per_cpu_s": (n1 - n0) / (c1 - c0),
        "padding_waste": 1 - real / slots,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "estimated_peak_mb": estimate.peak / 2**20,
        "trainable": trainable,
        "loss": loss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--worker", nargs=3, metavar=("METHOD", "PACKING", "MODEL"))
    args = parser.parse_args()
    if args.worker:
        method, packing, model = args.worker
        print(json.dumps(worker(method, packing == "1", args.steps, args.pairs, model)))
        return

    from faqforge.tiny_llama import build_tiny_llama

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = str(build_tiny_llama(Path(tmp) / "tiny-llama"))
        for method, packing in VARIANTS:
            cmd = [sys.executable, __file__, "--steps", str(args.steps), "--pairs", str(args.pairs)]
            cmd += ["--worker", method, str(int(packing)), model]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if out.returncode != 0:
                sys.exit(f"{method} packing={packing} failed:\n{out.stderr[-3000:]}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(
        f"tiny Llama (2 layers, hidden 64), CPU, {args.steps} steps × batch 8, max_length 256, "
        f"{args.pairs} corpus QA pairs; timed after {WARMUP} warm-up steps\n"
    )
    header = (
        f"{'method':<7}{'packing':>8}{'steps/s':>9}{'tokens/s':>10}{'tok/CPU-s':>10}"
        f"{'pad waste':>10}{'peak RSS MB':>12}{'estimate MB':>12}{'trainable':>11}{'last loss':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['method']:<7}{'on' if r['packing'] else 'off':>8}{r['steps_per_s']:>9.2f}"
            f"{r['tokens_per_s']:>10,.0f}{r['tokens_per_cpu_s']:>10,.0f}{r['padding_waste']:>10.1%}"
            f"{r['peak_rss_mb']:>12,.0f}"
            f"{r['estimated_peak_mb']:>12,.0f}{r['trainable']:>11,}{r['loss']:>10.3f}"
        )


if __name__ == "__main__":
    main()
