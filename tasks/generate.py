"""Generate: chunks → question/answer pairs from a teacher, cached per chunk by content.

A chunk's reply is cached (``faqforge/teachers/cache.py``) the moment it arrives, keyed by
what changes it: chunk text and heading path, pairs asked for, teacher model, prompt
version, reply schema and sampling settings. A re-run over unchanged chunks sends nothing; a
run killed half-way (even ``kill -9``) sends only what is left; chunks that vanished since
the last run are counted as retired (their pairs leave the dataset, which is rebuilt from
the current chunks). Failed chunks become rejections with the raw reply and are not cached,
so the next run asks again; too many failures fail the stage. Every request is in the token
ledger; a spent ``teacher.token_budget`` stops new requests and leaves chunks for next run.
Not handled: a teacher that answers differently for the same key (temperature > 0) is
asked once; its cached answer stands until the key changes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import get_run_logger

from faqforge.config import TeacherConfig, stable_hash
from faqforge.records import Chunk, QAPair, Rejection, fact_id_of
from faqforge.stage import StageCounts, StageOutput
from faqforge.storage import Workspace
from faqforge.tasking import IO_RETRIES, Computed, in_prefect_run, stage
from faqforge.teachers import Teacher, TeacherError, TeacherReply, make_teacher
from faqforge.teachers.cache import cache_path, generation_key, read_reply, retire, write_reply
from faqforge.teachers.fanout import (
    Ask,
    ChunksFailed,
    Traffic,
    fan_out,
    rejection,
    retry_if_transient,
    run_sync,
)
from faqforge.teachers.ledger import Budget, Ledger, run_ledger
from faqforge.teachers.orchestration import (
    Slot,
    prefect_slot,
    publish_ledger_artifact,
    write_ledger,
)

STAGE = "generate"
log = logging.getLogger(__name__)


def facts_for_chunk(n_tokens: int, cfg: TeacherConfig) -> int:
    """Facts to ask for: ``facts_for_chunk(256, TeacherConfig())`` → 4 (1.5 per 100, in [1, 6]).

    Each fact comes back with ``cfg.phrasings`` questions, so a chunk yields about
    ``facts × phrasings`` pairs.
    """
    wanted = round(n_tokens / 100 * cfg.facts_per_100_tokens)
    return max(cfg.min_facts, min(cfg.max_facts, wanted))


def make_pairs(chunk: Chunk, reply: TeacherReply, teacher: Teacher) -> list[QAPair]:
    """QAPair records with lineage; the id hashes chunk, question and answer, so it is stable.

    Every phrasing of one fact carries its ``fact_id`` (``records.fact_id_of``).
    """
    pairs: dict[str, QAPair] = {}
    for fact in reply.facts:
        fact_id = fact_id_of(chunk.chunk_id, fact.answer)
        for question in fact.questions:
            pair_id = "qa-" + stable_hash([chunk.chunk_id, question, fact.answer])
            pairs.setdefault(
                pair_id,
                QAPair(
                    id=pair_id,
                    question=question,
                    answer=fact.answer,
                    doc_id=chunk.doc_id,
                    chunk_id=chunk.chunk_id,
                    source=chunk.source,
                    prompt_version=teacher.prompt_version,
                    teacher=teacher.name,
                    heading_path=list(chunk.heading_path),
                    fact_id=fact_id,
                ),
            )
    return list(pairs.values())


class GenerateStats(Traffic):
    """The fan-out's traffic and what became of the replies: generate's stats, as judge and
    publish read them (``out.stats_as(GenerateStats)``)."""

    teacher: str = ""
    duplicate_pairs: int = 0
    retired_chunks: int = 0
    retired_pairs: int = 0


@dataclass
class GenerateResult:
    pairs: list[QAPair]
    rejections: list[Rejection]
    n_chunks: int
    ledger: Ledger
    stats: GenerateStats = field(default_factory=GenerateStats)

    def counts(self) -> StageCounts:
        answered = self.n_chunks - len(self.rejections)
        return StageCounts.of(self.n_chunks, answered, self.rejections, produced=len(self.pairs))


async def generate_for_chunks(
    chunks: Sequence[Chunk],
    teacher: Teacher,
    cache_dir: Path,
    cfg: TeacherConfig,
    budget: Budget | None = None,
    slot: Slot | None = None,
    force: bool = False,
    logger: Any = None,
) -> GenerateResult:
    """Ask the teacher about every uncached chunk (``fan_out``: cache, budget, slot, ledger).

    ``force`` asks about every chunk and overwrites its cached reply (after a bad teacher
    night). Raises ChunksFailed (after caching) when the share of failed chunks
    exceeds ``cfg.max_failure_share``.
    """

    def ask(chunk: Chunk) -> Ask[TeacherReply]:
        n_facts = facts_for_chunk(chunk.n_tokens, cfg)
        path = cache_path(cache_dir, generation_key(chunk, n_facts, teacher, cfg))
        return Ask(chunk, path, lambda: teacher.generate(chunk, n_facts))

    stats = GenerateStats()
    fanned = await fan_out(
        STAGE,
        [ask(c) for c in chunks],
        cfg,
        teacher,
        read_reply,
        lambda path, reply: write_reply(path, reply, teacher),
        stats,
        budget,
        slot,
        force,
        logger,
    )
    result = GenerateResult([], [], len(chunks), fanned.ledger, stats)
    covered: dict[str, int] = {}
    for chunk, outcome in zip(chunks, fanned.outcomes, strict=True):
        if isinstance(outcome, TeacherError):
            result.rejections.append(rejection(STAGE, chunk, outcome))
            continue
        if not outcome.pairs:
            empty = TeacherError("no_pairs", "the teacher found nothing to ask", outcome.raw)
            result.rejections.append(rejection(STAGE, chunk, empty))
            continue
        made = make_pairs(chunk, outcome, teacher)
        stats.duplicate_pairs += len(outcome.pairs) - len(made)
        covered[chunk.chunk_id] = len(made)
        result.pairs += made
    stats.retired_chunks, stats.retired_pairs = retire(cache_dir, covered)
    return result


def _key_params(params: dict[str, Any]) -> dict[str, Any]:
    """What the pairs were asked about (the output's hash is the rest of the key: a re-run
    that now answers a chunk which failed before writes a new folder)."""
    cfg: TeacherConfig = params["cfg"]
    return {"chunks": params["chunks"], "cfg": cfg.generation_key(),
            "workspace": params["workspace"]}  # fmt: skip


def _report(out: StageOutput, params: dict[str, Any]) -> None:
    """The run's ledger artifact and one log line of what was sent and reused."""
    cfg: TeacherConfig = params["cfg"]
    publish_ledger_artifact(
        run_ledger({STAGE: out.stats["ledger"]}, cfg.token_budget),
        Workspace(Path(params["workspace"])),
    )
    st, counts = out.stats, out.counts
    logger = get_run_logger() if in_prefect_run() else log
    logger.info(
        "generate: %d chunks → %d pairs (%d rejected); %d sent to %s, %d from cache, %d failed, "
        "%d left for a later run; %d prompt + %d completion tokens",
        counts.in_, counts.produced or 0, sum(counts.rejected.values()), st["requests"],
        st["teacher"], st["cache_hits"], st["failed"], st["left"], st["prompt_tokens"],
        st["completion_tokens"],
    )  # fmt: skip


@stage(STAGE, key_on="output", key_params=_key_params, after=_report,
       retry_condition_fn=retry_if_transient, **IO_RETRIES)  # fmt: skip
def generate(
    chunks: StageOutput, cfg: TeacherConfig, workspace: str, force_regenerate: bool = False
) -> Computed:
    """QA pairs for every chunk. Never cached as a whole: the per-chunk cache makes a re-run
    free, and its stats must say what this run sent (``requests``) and reused (``cache_hits``).
    ``force_regenerate`` asks the teacher again for every chunk, replacing its cached reply.
    """
    ws = Workspace(Path(workspace))
    teacher = make_teacher(cfg)
    items = chunks.read("chunks", Chunk)
    logger = get_run_logger() if in_prefect_run() else log
    coro = generate_for_chunks(
        items,
        teacher,
        ws.teacher_cache,
        cfg,
        slot=prefect_slot(cfg),
        force=force_regenerate,
        logger=logger,
    )
    try:
        result = run_sync(coro)
    except ChunksFailed as exc:  # the failed run writes no output: show what came back
        for r in exc.rejections[:5]:
            logger.warning("%s %s: %s; raw reply: %.500s", r.record_id, r.reason, r.detail,
                           r.record["raw"])  # fmt: skip
        raise
    rows = result.ledger.rows
    ledger = {**result.ledger.summary(), "file": write_ledger(ws, result.ledger) if rows else None}
    stats = result.stats.model_copy(
        update={"teacher": teacher.name, "prompt_version": teacher.prompt_version, "ledger": ledger}
    )
    return {"pairs": result.pairs, "rejections": result.rejections}, result.counts(), stats
