"""Pairs of sample chunks and a judge run against the fake OpenAI server behind the fault
proxy (the ``proxy`` fixture in conftest): the judge tests' shared data."""

from __future__ import annotations

import asyncio

from faqforge.config import TeacherConfig
from faqforge.records import QAPair
from faqforge.teachers import make_backend
from faqforge.teachers.pair_rater import PairRater
from tasks.judge import judge_pairs
from testsupport.resume_worker import sample_chunks

CHUNKS = sample_chunks(3)


def pair(i: int, chunk: int, answer: str = "A fact.") -> QAPair:
    c = CHUNKS[chunk]
    return QAPair(f"qa-{i}", f"What is part {i}?", answer, c.doc_id, c.chunk_id, c.source,
                  "p1", "tiny-teacher")  # fmt: skip


PAIRS = [pair(0, 0), pair(1, 0, "WRONG: it is made of cheese."), pair(2, 1), pair(3, 2)]


def config(proxy, **judge) -> TeacherConfig:
    return TeacherConfig(kind="openai", base_url=proxy.base_url, model="tiny-teacher",
                         max_retries=0, judge={"enabled": True, **judge})  # fmt: skip


def run(proxy, cache_dir, cfg=None, pairs=PAIRS, budget=None):
    cfg = cfg or config(proxy)
    judge = PairRater(cfg.judge, make_backend(cfg, judge=True))
    chunks = {c.chunk_id: c for c in CHUNKS}
    return asyncio.run(judge_pairs(pairs, chunks, judge, cache_dir, cfg, budget))
