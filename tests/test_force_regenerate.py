"""``refresh --force-regenerate``: every chunk is asked again and its cached reply replaced
(after a bad teacher night); the judge's verdicts likewise. The normal path is unchanged."""

from __future__ import annotations

import asyncio
import json

from typer.testing import CliRunner

from faqforge.cli import app
from faqforge.teachers import make_backend
from faqforge.teachers.base import Fact
from faqforge.teachers.pair_rater import PairRater
from tasks.generate import generate_for_chunks
from tasks.judge import judge_pairs
from testsupport.judging import CHUNKS, PAIRS, config
from testsupport.teaching import CFG, ScriptedTeacher, cache_files, make_chunk, run


class BetterTeacher(ScriptedTeacher):
    """The next night's teacher: different answers for the same chunks."""

    async def generate(self, chunk, n_facts):
        reply = await super().generate(chunk, n_facts)
        reply.facts[:] = [Fact(f"{f.answer} (improved)", f.questions) for f in reply.facts]
        return reply


def test_force_asks_again_for_every_chunk_and_overwrites_the_cache(tmp_path):
    chunks = [make_chunk(i) for i in range(3)]
    run(chunks, ScriptedTeacher(), tmp_path)
    before = {p: p.read_text() for p in cache_files(tmp_path)}

    normal = run(chunks, BetterTeacher(), tmp_path)  # the normal path: all from the cache
    assert (normal.stats.requests, normal.stats.cache_hits) == (0, 3)

    teacher = BetterTeacher()
    forced = asyncio.run(generate_for_chunks(chunks, teacher, tmp_path, CFG, force=True))
    assert (forced.stats.requests, forced.stats.cache_hits) == (3, 0)
    assert sorted(teacher.calls) == ["c0", "c1", "c2"]
    assert all(p.answer.endswith("(improved)") for p in forced.pairs)
    assert sorted(before) == cache_files(tmp_path)  # same keys, replaced contents
    for path in before:
        facts = json.loads(path.read_text())["facts"]
        assert all(f["answer"].endswith("(improved)") for f in facts)

    after = run(chunks, ScriptedTeacher(), tmp_path)  # the next normal run reuses the new replies
    assert after.stats.requests == 0 and after.pairs == forced.pairs


def test_force_rates_every_chunk_again(proxy, tmp_path):
    def rate(force: bool):
        cfg = config(proxy)
        judge = PairRater(cfg.judge, make_backend(cfg, judge=True))
        chunks = {c.chunk_id: c for c in CHUNKS}
        return asyncio.run(judge_pairs(PAIRS, chunks, judge, tmp_path, cfg, force=force))

    rate(False)
    sent = len(proxy.requests)
    assert rate(False).stats.cache_hits == 3 and len(proxy.requests) == sent
    forced = rate(True)
    assert (forced.stats.requests, forced.stats.cache_hits) == (3, 0)
    assert len(proxy.requests) == 2 * sent


def test_cli_offers_force_regenerate():
    result = CliRunner().invoke(app, ["run", "refresh", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "--force-regenerate" in result.output
