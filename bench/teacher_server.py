"""Teacher cost against a real vLLM server (tiny local Llama on CPU): incremental and concurrency.

    .venv/bin/python bench/teacher_server.py [--docs 100] [--n 32]

Needs ``.venv-vllm`` (``scripts/setup-vllm``). Starts one server, then in one process:
- incremental: ingest → chunk → generate over ``--docs`` documents (variants of the sample
  corpus, each naming its own product so no two chunks share a cache entry), then again
  unchanged, then after appending a section to 1% of the documents; prints teacher requests,
  tokens (the server's ``usage``) and wall time of each, and ratios against the full run;
- concurrency: ``--n`` distinct chunks at concurrency 1, then ``--n`` others at concurrency
  ``--n`` (fresh caches, so every chunk is sent); prints requests/s and the ratio.
Settings keep a random-weight model's replies short enough to finish: 2 pairs per chunk,
5-word answers (the schema's ``maxLength`` then bounds every string).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.refresh_rerun import build_corpus  # noqa: E402
from faqforge.runtime import prepare_environment  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--n", type=int, default=32)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="faqforge-bench-teacher-"))
    prepare_environment()

    from faqforge.config import PipelineConfig
    from faqforge.teachers import make_teacher
    from faqforge.tiny_llama import build_tiny_llama
    from tasks.chunk import chunk
    from tasks.generate import generate, generate_for_chunks
    from tasks.ingest import ingest
    from tasks.prepare import prepare_tokenizer
    from testsupport.local_vllm import LocalVLLM

    python = ROOT / ".venv-vllm" / "bin" / "python"
    if not python.is_file():
        sys.exit("needs .venv-vllm: run scripts/setup-vllm")
    model = build_tiny_llama(tmp / "model")
    started = time.perf_counter()
    with LocalVLLM(python, model, tmp / "server.log") as server:
        print(f"vLLM server ready in {time.perf_counter() - started:.0f} s at {server.base_url}")
        cfg = PipelineConfig()
        cfg.teacher = cfg.teacher.model_copy(update={
            "kind": "openai", "base_url": server.base_url, "model": "tiny-teacher",
            "concurrency": args.n, "min_facts": 1, "max_facts": 1, "max_answer_words": 5,
            "max_tokens": 512, "max_failure_share": 1.0,
        })  # fmt: skip
        ws = str(tmp / "ws")
        files = build_corpus(tmp / "corpus", math.ceil(args.docs / 8))[: args.docs]
        for extra in sorted((tmp / "corpus").rglob("*.md")):
            if extra not in files:
                extra.unlink()
        tokenizer = prepare_tokenizer.fn(cfg, ws)

        def refresh() -> tuple[dict, float]:
            start = time.perf_counter()
            docs = ingest.fn(str(tmp / "corpus"), cfg.ingest, ws)
            chunks = chunk.fn(docs, cfg.chunk, tokenizer, ws)
            out = generate.fn(chunks, cfg.teacher, ws)
            return {**out.stats, "chunks": chunks.counts.produced}, time.perf_counter() - start

        full, t_full = refresh()
        same, t_same = refresh()
        n_edit = max(1, round(len(files) / 100))
        for path in files[:n_edit]:
            added = "\n\n## Release notes\n\nThis section was added after the first refresh.\n"
            path.write_text(path.read_text() + added)
        edited, t_edit = refresh()

        def tokens(s: dict) -> int:
            return s["prompt_tokens"] + s["completion_tokens"]

        print(f"\nincremental: {len(files)} documents, {full['chunks']} chunks; edited {n_edit} "
              f"({n_edit / len(files):.0%})")  # fmt: skip
        print(f"{'run':<22} {'requests':>9} {'tokens':>9} {'vs full':>8} {'wall s':>8} "
              f"{'vs full':>8}")  # fmt: skip
        for name, s, t in (("full", full, t_full), ("unchanged", same, t_same),
                           (f"{n_edit} doc(s) edited", edited, t_edit)):  # fmt: skip
            print(f"{name:<22} {s['requests']:>9} {tokens(s):>9} {tokens(s) / tokens(full):>8.2%} "
                  f"{t:>8.1f} {t / t_full:>8.1%}")  # fmt: skip

        from testsupport.resume_worker import sample_chunks

        pool = sample_chunks(2 * args.n)

        def throughput(concurrency: int, chunks: list) -> float:
            tc = cfg.teacher.model_copy(update={"concurrency": concurrency})
            cache = Path(tempfile.mkdtemp(dir=tmp))
            start = time.perf_counter()
            result = asyncio.run(generate_for_chunks(chunks, make_teacher(tc), cache, tc))
            if result.rejections:
                print(f"  ({len(result.rejections)} chunks rejected at concurrency {concurrency})")
            return len(chunks) / (time.perf_counter() - start)

        one = throughput(1, pool[: args.n])
        many = throughput(args.n, pool[args.n :])
        print(f"\nconcurrency: {args.n} requests each")
        print(f"concurrency 1:  {one:6.2f} req/s")
        print(f"concurrency {args.n}: {many:6.2f} req/s   ratio {many / one:.1f}x")


if __name__ == "__main__":
    main()
