"""Run the generate stage in a child process that a test kills with SIGKILL half-way.

    python testsupport/resume_worker.py BASE_URL CACHE_DIR N_CHUNKS CONCURRENCY

``sample_chunks(n)`` gives parent and child the same chunks (paragraphs of the bundled
corpus); ``kill_mid_run`` starts the child, waits until ``answered`` replies are cached,
kills it and returns the cache files present at that moment.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from faqforge.config import TeacherConfig  # noqa: E402
from faqforge.records import Chunk  # noqa: E402
from faqforge.storage import sha256_text  # noqa: E402


def sample_chunks(n: int) -> list[Chunk]:
    """``n`` distinct short chunks: paragraphs of the sample corpus, numbered."""
    paragraphs = [
        p.strip()
        for path in sorted((ROOT / "faqforge" / "sample_corpus").glob("*.md"))
        for p in path.read_text().split("\n\n")
        if len(p.split()) >= 12 and not p.lstrip().startswith(("#", "```", "|"))
    ]
    chunks = []
    for i in range(n):
        text = f"{paragraphs[i % len(paragraphs)][:600]} (Part {i}.)"
        chunks.append(Chunk(f"c{i:03d}", f"d{i // 4}", f"doc{i // 4}.md", i % 4,
                            ["faqforge", f"Part {i}"], text, 60, sha256_text(text)))  # fmt: skip
    return chunks


def worker_config(base_url: str, concurrency: int) -> TeacherConfig:
    return TeacherConfig(
        kind="openai", base_url=base_url, model="tiny-teacher", concurrency=concurrency,
        min_facts=1, max_facts=1, max_answer_words=5, max_tokens=512, timeout_s=120,
    )  # fmt: skip


def cached(cache_dir: Path) -> set[Path]:
    return set(cache_dir.glob("??/*.json"))


def kill_mid_run(
    base_url: str, cache_dir: Path, n: int, concurrency: int, answered: int
) -> set[Path]:
    """Start a child run, SIGKILL it once ``answered`` replies are cached; the cache then."""
    child = subprocess.Popen(
        [sys.executable, __file__, base_url, str(cache_dir), str(n), str(concurrency)]
    )
    try:
        deadline = time.monotonic() + 300
        while len(cached(cache_dir)) < answered:
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"child ended ({child.returncode}) or stalled before "
                                   f"{answered} answers")  # fmt: skip
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return cached(cache_dir)


def main() -> None:
    from faqforge.teachers import make_teacher
    from tasks.generate import generate_for_chunks

    base_url, cache_dir, n, concurrency = sys.argv[1], Path(sys.argv[2]), *map(int, sys.argv[3:])
    cfg = worker_config(base_url, concurrency)
    asyncio.run(generate_for_chunks(sample_chunks(n), make_teacher(cfg), cache_dir, cfg))


if __name__ == "__main__":
    main()


def part_of(body: dict) -> str:
    """The chunk a request asked about, by its ``(Part i.)`` marker."""
    user = body["messages"][1]["content"]
    return f"c{int(user.rsplit('(Part ', 1)[1].split('.)', 1)[0]):03d}"


def resume_after_kill(proxy, cache_dir: Path, n: int, concurrency: int, answered: int):
    """Kill a child run half-way, resume in this process through ``proxy``.

    Returns ``(chunks left at the kill, chunks the resumed run sent, the resumed result)``.
    """
    from faqforge.teachers import make_teacher
    from faqforge.teachers.cache import cache_path, generation_key
    from tasks.generate import facts_for_chunk, generate_for_chunks

    at_kill = kill_mid_run(proxy.base_url, cache_dir, n, concurrency, answered)
    cfg = worker_config(proxy.base_url, concurrency)
    chunks, teacher = sample_chunks(n), make_teacher(cfg)
    left = [
        c.chunk_id for c in chunks
        if cache_path(cache_dir, generation_key(c, facts_for_chunk(c.n_tokens, cfg), teacher, cfg))
        not in at_kill
    ]  # fmt: skip
    before = len(proxy.requests)
    result = asyncio.run(generate_for_chunks(chunks, teacher, cache_dir, cfg))
    return left, [part_of(b) for b in proxy.requests[before:]], result
