"""Per-file cost of ingest (and per-document cost of chunk) at 1,000 vs 10,000 small files.

    .venv/bin/python bench/ingest_many_files.py [--sizes 1000 10000]

Writes ``n`` small markdown files (a heading and two short paragraphs, 100 per folder) and
runs the real ``ingest`` task body (walk, read, extract, hash, key, JSONL out) and then
``chunk_documents`` with the tiny student's tokenizer, each timed on its own. A per-file cost
ratio near 1 between the sizes means the stage is linear in the number of files; a quadratic
step would make the 10,000-file cost ten times the 1,000-file one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from faqforge.config import ChunkConfig, IngestConfig  # noqa: E402
from faqforge.records import Document  # noqa: E402
from faqforge.runtime import prepare_environment  # noqa: E402


def write_corpus(root: Path, n: int) -> None:
    for i in range(n):
        path = root / f"d{i // 100:03d}" / f"note-{i:05d}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f"# Note {i}\n\nItem {i} is kept in folder {i // 100}. It was written for a test.\n\n"
            f"Ask about item {i} when the nightly refresh runs.\n"
        )


def measure(tmp: Path, n: int, tokenizer_file: str) -> dict[str, float]:
    from tasks.chunk import chunk_documents, load_tokenizer
    from tasks.ingest import ingest

    corpus, ws = tmp / f"corpus-{n}", tmp / f"ws-{n}"
    write_corpus(corpus, n)
    start = time.perf_counter()
    out = ingest.fn(str(corpus), IngestConfig(), str(ws))
    ingest_s = time.perf_counter() - start
    assert out.counts.out == n, out.counts
    docs = out.read("documents", Document)
    tokenizer = load_tokenizer(tokenizer_file)
    start = time.perf_counter()
    chunks, _ = chunk_documents(docs, tokenizer, ChunkConfig())
    chunk_s = time.perf_counter() - start
    assert len(chunks) == n  # one short document, one chunk
    return {"ingest_ms_per_file": 1000 * ingest_s / n, "chunk_ms_per_doc": 1000 * chunk_s / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[1000, 10000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="faqforge-bench-ingest-") as name:
        tmp = Path(name)
        prepare_environment()
        from faqforge.tiny_llama import build_tokenizer

        tokenizer_file = str(build_tokenizer(tmp / "tokenizer"))
        small, large = (measure(tmp, n, tokenizer_file) for n in args.sizes)
    print(f"{'':20}{args.sizes[0]:>10}{args.sizes[1]:>10}{'ratio':>8}")
    for name in small:
        ratio = large[name] / small[name]
        print(f"{name:20}{small[name]:10.3f}{large[name]:10.3f}{ratio:8.2f}")


if __name__ == "__main__":
    main()
