"""The GPU check: QLoRA training and vLLM LoRA serving speed on the production student's
architecture, ready for the day a GPU machine is lent.

    .venv/bin/python bench/gpu_check.py            # one CUDA GPU; about 6-8 min on an H100/H200
    .venv/bin/python bench/gpu_check.py --tiny     # the same steps on CPU, a 2-layer Llama (CI)

Nothing can be downloaded where a GPU is lent, so the student is Llama-3-8B's architecture
(hidden 4096, 32 layers, 32 heads, 8 KV heads, intermediate 14336, vocab 128,256, RoPE theta
500,000) with random weights and a word-level tokenizer covering its 128,256 ids: speed and
memory depend on the architecture, not on the weights.

1. QLoRA, as ``finetune`` in the production config
   (``configs/llama3-70b-teacher_llama3-8b-qlora_cuda.yaml``): NF4 with double quantisation
   and bf16 compute (``tasks.training.recipe.load_model``), its LoRA settings
   (``lora_config``), sequence length ``finetune.max_length`` and batch ``finetune.batch_size``,
   checkpointing as configured. Warm-up steps, then timed steps: training tokens/s (batch ×
   length / step time) and peak GPU memory (``torch.cuda.max_memory_allocated``; peak RSS on
   CPU).
2. vLLM: an OpenAI-compatible server (``python -m vllm.entrypoints.openai.api_server`` from
   ``--vllm-python``) on the same architecture with ``--enable-lora`` and the adapter step 1
   trained; output tokens/s of the adapter at concurrency 1 and 32 (completions, fixed input
   and output lengths, ``ignore_eos``); then vLLM's own ``bench serve``
   (``vllm.benchmarks.serve``) on the base model at concurrency 32 against the same server:
   the ceiling the adapter's figure is compared with.

Prints one table with the anchors beside it: torchtune's Llama-3-8B QLoRA on one RTX 4090,
7.4 GiB peak memory and 2,413 tokens/s (torchtune README, "Memory and training speed" table).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from faqforge.config import FinetuneConfig, load_config  # noqa: E402
from testsupport.local_vllm import LocalVLLM  # noqa: E402

PRODUCTION = ROOT / "configs" / "llama3-70b-teacher_llama3-8b-qlora_cuda.yaml"
LLAMA3_8B = {
    "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
    "rope_theta": 500000.0, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False, "bos_token_id": 128000, "eos_token_id": 128001,
}  # fmt: skip
ANCHORS = {  # torchtune README, "Memory and training speed": Llama-3-8B QLoRA, one RTX 4090
    "train_tokens_per_s": 2413.0,
    "peak_memory_gib": 7.4,
}


@dataclass
class Check:
    device: str
    architecture: str
    seq_len: int
    batch: int
    train_tokens_per_s: float = 0.0
    peak_memory_gib: float = 0.0
    peak_memory_kind: str = "GPU allocated"
    train_steps_timed: int = 0
    serve: dict[str, float] = field(default_factory=dict)  # concurrency → output tok/s
    ceiling_tokens_per_s: float | None = None
    ceiling_note: str = ""
    seconds: dict[str, float] = field(default_factory=dict)


def synthetic_tokenizer(out: Path, vocab_size: int) -> None:
    """A word-level tokenizer with one word per id (``w0`` … ``w128255``): every id a random
    model emits decodes, and ``bench serve`` can build prompts of exact lengths."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = {"<|begin_of_text|>": 128000, "<|end_of_text|>": 128001}
    vocab = {f"w{i}": i for i in range(vocab_size) if i not in specials.values()}
    vocab.update(specials)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>",
        pad_token="<|end_of_text|>", unk_token="w0",
    )  # fmt: skip
    fast.save_pretrained(out)


def build_student(out: Path, tiny: bool) -> Path:
    """The architecture with random weights, saved as safetensors with its tokenizer."""
    if tiny:
        from faqforge.tiny_llama import build_tiny_llama

        return build_tiny_llama(out)
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**LLAMA3_8B)
    with torch.device("cuda"):
        model = LlamaForCausalLM._from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out, max_shard_size="5GB")
    del model
    torch.cuda.empty_cache()
    synthetic_tokenizer(out, LLAMA3_8B["vocab_size"])
    return out


def finetune_config(tiny: bool) -> FinetuneConfig:
    cfg = load_config(PRODUCTION).finetune
    if tiny:  # the same recipe, sized for a laptop
        return cfg.model_copy(update={"max_length": 128, "batch_size": 2,
                                      "gradient_checkpointing": False})  # fmt: skip
    return cfg


def measure_qlora(
    model_dir: Path, cfg: FinetuneConfig, adapter_out: Path, cuda: bool, steps: int
) -> tuple[float, float, str]:
    """``(tokens/s, peak GiB, what the peak is)`` over ``steps`` timed steps, after warm-up;
    the adapter is saved to ``adapter_out`` for the serving step."""
    import torch
    from peft import get_peft_model

    from tasks.training.recipe import load_model, lora_config

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    model = get_peft_model(load_model(str(model_dir), cfg, cuda=cuda, quantized=True),
                           lora_config(cfg))  # fmt: skip
    model.train()
    device = next(p.device for p in model.parameters())
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    batch = torch.randint(0, vocab, (cfg.batch_size, cfg.max_length), generator=generator)
    batch = batch.to(device)

    def step() -> None:
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(2):  # warm-up: kernels, allocator, autotuning
        step()
    if cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    model.save_pretrained(adapter_out)
    if cuda:
        peak, kind = torch.cuda.max_memory_allocated() / 2**30, "GPU allocated"
    else:
        peak, kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "RSS (CPU)"
    return cfg.batch_size * cfg.max_length * steps / elapsed, peak, kind


class LoRAServer(LocalVLLM):
    """The local vLLM server with the adapter loaded at start (``--lora-modules faq=…``)."""

    def __init__(self, *args: Any, adapter: Path, rank: int, cuda: bool, **kw: Any):
        super().__init__(*args, **kw)
        self.adapter, self.rank, self.cuda = adapter, rank, cuda

    def command(self) -> list[str]:
        cmd = super().command()
        if self.cuda:  # bf16 on the GPU, most of its memory for the KV cache
            cmd[cmd.index("--dtype") + 1] = "bfloat16"
            cmd += ["--gpu-memory-utilization", "0.85"]
        return [*cmd, "--enable-lora", "--max-loras", "1", "--max-lora-rank", str(self.rank),
                "--lora-modules", f"faq={self.adapter}"]  # fmt: skip


async def output_rate(
    base_url: str, model: str, concurrency: int, requests: int, in_len: int, out_len: int
) -> float:
    """Output tokens/s of ``requests`` completions, ``concurrency`` at a time."""
    import httpx

    limit = asyncio.Semaphore(concurrency)
    prompt = " ".join(f"w{i % 5000 + 10}" for i in range(in_len))

    async def one(client: httpx.AsyncClient) -> int:
        async with limit:
            body = {"model": model, "prompt": prompt, "max_tokens": out_len,
                    "temperature": 0.0, "ignore_eos": True}  # fmt: skip
            response = await client.post(f"{base_url}/completions", json=body)
            response.raise_for_status()
            return int(response.json()["usage"]["completion_tokens"])

    async with httpx.AsyncClient(timeout=600) as client:
        await one(client)  # warm-up
        started = time.perf_counter()
        tokens = await asyncio.gather(*(one(client) for _ in range(requests)))
    return sum(tokens) / (time.perf_counter() - started)


BENCH_SERVE = """
import json, sys
from vllm.benchmarks.serve import add_cli_args, main
from vllm.utils.argparse_utils import FlexibleArgumentParser
parser = FlexibleArgumentParser()
add_cli_args(parser)
result = main(parser.parse_args(sys.argv[1:]))
print("RESULT " + json.dumps({"output_throughput": result.get("output_throughput")}))
"""


def bench_serve_ceiling(
    python: Path, server: LocalVLLM, model_dir: Path, concurrency: int, in_len: int, out_len: int
) -> tuple[float | None, str]:
    """vLLM's own ``bench serve`` (random prompts, the base model) against ``server``."""
    args = [
        "--backend", "vllm", "--base-url", f"http://127.0.0.1:{server.port}",
        "--endpoint", "/v1/completions", "--model", server.served_name,
        "--tokenizer", str(model_dir), "--dataset-name", "random",
        "--random-input-len", str(in_len), "--random-output-len", str(out_len),
        "--num-prompts", str(concurrency * 2), "--max-concurrency", str(concurrency),
        "--ignore-eos",
    ]  # fmt: skip
    done = subprocess.run([str(python), "-c", BENCH_SERVE, *args], capture_output=True,
                          text=True, timeout=600, env=server.env())  # fmt: skip
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, f"bench serve failed: {tail[0][:200]}"
    return json.loads(lines[-1][7:])["output_throughput"], "vllm bench serve, base model"


def run_check(args: argparse.Namespace) -> Check:
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.tiny:
        raise SystemExit("no CUDA GPU here: run with --tiny for the CPU rehearsal")
    work = args.work or Path(tempfile.mkdtemp(prefix="faqforge-gpu-check-"))
    cfg = finetune_config(args.tiny)
    check = Check(
        device=torch.cuda.get_device_name(0) if cuda else "cpu",
        architecture="tiny Llama (2 layers)" if args.tiny else "Llama-3-8B (random weights)",
        seq_len=cfg.max_length,
        batch=cfg.batch_size,
    )
    started = time.perf_counter()
    model_dir = build_student(work / "model", args.tiny)
    check.seconds["build"] = time.perf_counter() - started

    started = time.perf_counter()
    adapter = work / "adapter"
    check.train_tokens_per_s, check.peak_memory_gib, check.peak_memory_kind = measure_qlora(
        model_dir, cfg, adapter, cuda, args.steps
    )
    if cuda:  # the trainer's memory goes back before vLLM takes 85% of the GPU
        torch.cuda.empty_cache()
    check.train_steps_timed = args.steps
    check.seconds["qlora"] = time.perf_counter() - started
    if args.skip_vllm:
        return check

    started = time.perf_counter()
    in_len, out_len = (32, 16) if args.tiny else (256, 128)
    server = LoRAServer(args.vllm_python, model_dir, work / "vllm.log", served_name="student",
                        max_model_len=512 if args.tiny else 2048, adapter=adapter,
                        rank=cfg.lora_r, cuda=cuda, ready_timeout_s=900)  # fmt: skip
    with server:
        for concurrency in (1, 32):
            requests = 8 if concurrency == 1 else 64
            check.serve[str(concurrency)] = asyncio.run(output_rate(
                server.base_url, "faq", concurrency, requests, in_len, out_len
            ))  # fmt: skip
        check.ceiling_tokens_per_s, check.ceiling_note = bench_serve_ceiling(
            args.vllm_python, server, model_dir, 32, in_len, out_len
        )
    check.seconds["vllm"] = time.perf_counter() - started
    return check


def table(check: Check) -> str:
    def ratio(value: float | None, anchor: float | None) -> str:
        return f"{value / anchor:.2f}×" if value and anchor else "—"

    ceiling = check.ceiling_tokens_per_s
    rows = [
        ("QLoRA NF4 training tokens/s", f"{check.train_tokens_per_s:,.0f}",
         f"{ANCHORS['train_tokens_per_s']:,.0f} (torchtune, RTX 4090)",
         ratio(check.train_tokens_per_s, ANCHORS["train_tokens_per_s"])),
        (f"peak memory, GiB ({check.peak_memory_kind})", f"{check.peak_memory_gib:.2f}",
         f"{ANCHORS['peak_memory_gib']} (torchtune, RTX 4090)",
         ratio(check.peak_memory_gib, ANCHORS["peak_memory_gib"])),
    ]  # fmt: skip
    for c, rate in check.serve.items():
        anchor = ceiling if c == "32" else None
        rows.append((f"vLLM + LoRA output tokens/s, concurrency {c}", f"{rate:,.1f}",
                     f"{ceiling:,.1f} (ceiling: {check.ceiling_note})" if anchor else "—",
                     ratio(rate, anchor)))  # fmt: skip
    if check.serve and ceiling is None:
        rows.append(("vLLM bench serve ceiling", "n/a", check.ceiling_note, "—"))
    head = (f"{check.architecture} on {check.device}: sequence {check.seq_len}, batch "
            f"{check.batch}, {check.train_steps_timed} timed steps; "
            + ", ".join(f"{k} {v:.0f} s" for k, v in check.seconds.items()))  # fmt: skip
    lines = [head, "", "| measure | here | anchor | ratio |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU, a 2-layer Llama (CI)")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    venv = ROOT / ".venv-vllm" / "bin" / "python"
    parser.add_argument("--vllm-python", type=Path,
                        default=venv if venv.is_file() else Path(sys.executable),
                        help="a Python with vllm installed")  # fmt: skip
    parser.add_argument("--skip-vllm", action="store_true", help="training only")
    parser.add_argument("--work", type=Path, default=None, help="kept for inspection")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    check = run_check(args)
    print(table(check))
    if args.json:
        args.json.write_text(json.dumps(asdict(check), indent=2) + "\n")


if __name__ == "__main__":
    main()
