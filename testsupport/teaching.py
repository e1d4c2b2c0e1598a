"""A scripted teacher and chunk fixtures for the generate-stage tests: answers from the chunk
text, fails, crashes or answers nothing where told to."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from faqforge.config import TeacherConfig
from faqforge.records import Chunk
from faqforge.stage import StageCounts, save_output
from faqforge.storage import Workspace, sha256_text
from faqforge.teachers import TeacherError, TeacherReply, Usage
from faqforge.teachers.base import Fact
from tasks.generate import generate_for_chunks

CFG = TeacherConfig(max_failure_share=0.5)


def make_chunk(i: int, text: str | None = None) -> Chunk:
    text = text or f"Stage {i} is a step of the pipeline. It writes files."
    return Chunk(
        chunk_id=f"c{i}", doc_id=f"d{i // 2}", source=f"doc{i // 2}.md", index=i,
        heading_path=["faqforge", f"Stage {i}"], text=text, n_tokens=120,
        text_hash=sha256_text(text),
    )  # fmt: skip


class ScriptedTeacher:
    """Answers from the chunk text; fails, crashes or answers nothing where told to."""

    name = "scripted"
    prompt_version = "v1"
    schema = "s1"

    def __init__(self, fail=(), crash=(), empty=()):
        self.fail, self.crash, self.empty = set(fail), set(crash), set(empty)
        self.calls: list[str] = []
        self.closed = 0

    def schema_version(self, n_facts: int) -> str:
        return f"{self.schema}-{n_facts}"

    async def generate(self, chunk: Chunk, n_facts: int) -> TeacherReply:
        self.calls.append(chunk.chunk_id)
        if chunk.chunk_id in self.crash:
            raise RuntimeError(f"killed at {chunk.chunk_id}")
        if chunk.chunk_id in self.fail:
            raise TeacherError("parse_error", "not JSON", raw=f"garbage for {chunk.chunk_id}",
                               calls=[Usage(7, 3)])  # fmt: skip
        if chunk.chunk_id in self.empty:
            return TeacherReply(facts=[], raw='{"facts": []}')
        # One fact (the chunk's text) asked n_facts ways: n_facts pairs per chunk.
        asked = tuple(f"What is {chunk.heading_path[-1]}? ({k})" for k in range(n_facts))
        fact = Fact(chunk.text, asked)
        return TeacherReply(facts=[fact], calls=(Usage(10, 5),), raw=json.dumps(asked))

    async def aclose(self) -> None:
        self.closed += 1


def run(chunks, teacher, cache_dir: Path, cfg: TeacherConfig = CFG, budget=None):
    return asyncio.run(generate_for_chunks(chunks, teacher, cache_dir, cfg, budget))


def cache_files(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.glob("??/*.json"))


def chunk_stage(ws: Workspace, chunks: list[Chunk]):
    counts = StageCounts.of(len(chunks), len(chunks), [], produced=len(chunks))
    return save_output(ws, "chunk", "k-" + chunks[0].text_hash, {"chunks": chunks}, counts)
