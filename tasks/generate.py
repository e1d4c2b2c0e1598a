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

import asyncio
import logging
import sys
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from faqforge.config import TeacherConfig, stable_hash
from faqforge.progress import Progress
from faqforge.records import Chunk, QAPair, Rejection, fact_id_of
from faqforge.stage import StageCounts, StageOutput, module_hash, save_output, stage_key
from faqforge.storage import Workspace
from faqforge.tasking import IO_RETRIES, in_prefect_run, publish_counts_artifact
from faqforge.teachers import Teacher, TeacherError, TeacherReply, make_teacher
from faqforge.teachers.cache import cache_path, generation_key, read_reply, retire, write_reply
from faqforge.teachers.ledger import Budget, Ledger, run_ledger
from faqforge.teachers.orchestration import (
    Slot,
    prefect_slot,
    publish_ledger_artifact,
    write_ledger,
)

STAGE = "generate"
log = logging.getLogger(__name__)
T = TypeVar("T")


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


@dataclass
class GenerateStats:
    """This run's teacher traffic: a re-run over unchanged chunks has requests == 0.

    ``requests`` counts chunks sent (a chunk retried after a bad reply is one); the ledger
    counts every HTTP request. ``left``: chunks not sent because the token budget ran out.
    """

    requests: int = 0
    cache_hits: int = 0
    failed: int = 0
    left: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
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

    def content_hash(self) -> str:
        return stable_hash([r.to_dict() for r in [*self.pairs, *self.rejections]])


class GenerateFailed(RuntimeError):
    """More chunks failed than ``teacher.max_failure_share`` allows; answered ones are cached."""

    def __init__(
        self, rejections: list[Rejection], n_chunks: int, cfg: TeacherConfig, stage: str = STAGE
    ):
        self.rejections = rejections
        first = "; ".join(
            f"{r.record_id} ({r.record['source']}): {r.detail}" for r in rejections[:3]
        )
        where = f" ({cfg.model} at {cfg.base_url})" if cfg.kind == "openai" else ""
        super().__init__(
            f"{stage}: {len(rejections)} of {n_chunks} chunks failed, more than "
            f"teacher.max_failure_share={cfg.max_failure_share}. First: {first}. Check the "
            f"{cfg.kind} teacher{where} (the task log shows raw replies); a re-run sends only "
            "the failed chunks."
        )

    @property
    def transient(self) -> bool:
        """Only HTTP failures may pass by themselves; a bad prompt or parser will not."""
        return all(r.reason == "http_error" for r in self.rejections)


def rejection(stage: str, chunk: Chunk, err: TeacherError) -> Rejection:
    return Rejection(
        record_id=chunk.chunk_id,
        stage=stage,
        reason=err.reason,
        detail=err.detail,
        record={"chunk_id": chunk.chunk_id, "source": chunk.source, "raw": err.raw},
    )


# Not a failure: the chunk was never sent. The next run (with budget) sends it.
BUDGET_SPENT = TeacherError("budget_exhausted", "teacher.token_budget was spent; not sent")


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
    """Ask the teacher about every uncached chunk, ``cfg.concurrency`` at a time.

    ``slot`` (optional) is entered around each request: a Prefect global limit shared with
    other flows. Each reply is cached the moment it arrives. ``force`` asks about every
    chunk and overwrites its cached reply (after a bad teacher night). Raises
    GenerateFailed (after caching) when the share of failed chunks exceeds
    ``cfg.max_failure_share``.
    """
    stats, ledger = GenerateStats(), Ledger(STAGE, cfg)
    budget = budget or Budget(cfg.token_budget)
    limit = asyncio.Semaphore(cfg.concurrency)

    async def answer(chunk: Chunk) -> TeacherReply | TeacherError:
        hits = stats.cache_hits
        outcome = await ask(chunk)
        failed = isinstance(outcome, TeacherError) and outcome is not BUDGET_SPENT
        progress.advance(1, cache_hits=stats.cache_hits - hits, failed=int(failed))
        return outcome

    async def ask(chunk: Chunk) -> TeacherReply | TeacherError:
        n_facts = facts_for_chunk(chunk.n_tokens, cfg)
        path = cache_path(cache_dir, generation_key(chunk, n_facts, teacher, cfg))
        if not force and (cached := read_reply(path)) is not None:
            stats.cache_hits += 1
            return cached
        async with limit:
            if not budget.allows():
                return BUDGET_SPENT
            stats.requests += 1
            try:
                async with slot() if slot else nullcontext():
                    reply = await teacher.generate(chunk, n_facts)
            except TeacherError as err:
                budget.spend(err.usage)
                ledger.add(chunk, err.calls)
                return err
        budget.spend(reply.usage)
        ledger.add(chunk, reply.calls)
        # An empty reply is an answer too: cached, so a re-run does not ask again.
        write_reply(path, reply, teacher)
        return reply

    progress = Progress("generate", len(chunks), "chunks", logger=logger)
    jobs = [asyncio.ensure_future(answer(c)) for c in chunks]
    try:
        with progress:
            outcomes = await asyncio.gather(*jobs)
    finally:
        for pending in jobs:  # after a crash, stop asking: what was answered is cached
            pending.cancel()
        await teacher.aclose()

    result = GenerateResult([], [], len(chunks), ledger, stats)
    covered: dict[str, int] = {}
    for chunk, outcome in zip(chunks, outcomes, strict=True):
        if isinstance(outcome, TeacherError):
            result.rejections.append(rejection(STAGE, chunk, outcome))
            stats.left += outcome is BUDGET_SPENT
            stats.failed += outcome is not BUDGET_SPENT
            continue
        if not outcome.pairs:
            empty = TeacherError("no_pairs", "the teacher found nothing to ask", outcome.raw)
            result.rejections.append(rejection(STAGE, chunk, empty))
            continue
        made = make_pairs(chunk, outcome, teacher)
        stats.duplicate_pairs += len(outcome.pairs) - len(made)
        covered[chunk.chunk_id] = len(made)
        result.pairs += made
    ledger.left = stats.left
    stats.prompt_tokens = sum(r.prompt_tokens for r in ledger.rows)
    stats.completion_tokens = sum(r.completion_tokens for r in ledger.rows)
    if chunks and stats.failed / len(chunks) > cfg.max_failure_share:
        failures = [
            r for r in result.rejections if r.reason not in ("no_pairs", BUDGET_SPENT.reason)
        ]
        raise GenerateFailed(failures, len(chunks), cfg)
    stats.retired_chunks, stats.retired_pairs = retire(cache_dir, covered)
    return result


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, also when the caller's thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _retry_if_transient(_task: Any, _run: Any, state: Any) -> bool:
    return isinstance(state.data, GenerateFailed) and state.data.transient


@task(name="generate", cache_policy=NO_CACHE, retry_condition_fn=_retry_if_transient, **IO_RETRIES)
def generate(
    chunks: StageOutput, cfg: TeacherConfig, workspace: str, force_regenerate: bool = False
) -> StageOutput:
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
    except GenerateFailed as exc:  # the failed run writes no output: show what came back
        for r in exc.rejections[:5]:
            logger.warning("%s %s: %s; raw reply: %.500s", r.record_id, r.reason, r.detail,
                           r.record["raw"])  # fmt: skip
        raise
    # The output's own hash is in the key: a re-run that now answers a chunk which failed
    # before writes a new folder instead of finding the old one under the same name.
    key = stage_key(
        STAGE,
        chunks,
        teacher.name,
        teacher.prompt_version,
        cfg.generation_key(),
        module_hash(sys.modules[__name__]),
        result.content_hash(),
    )
    rows = result.ledger.rows
    ledger = {**result.ledger.summary(), "file": write_ledger(ws, result.ledger) if rows else None}
    stats = {
        **asdict(result.stats),
        "teacher": teacher.name,
        "prompt_version": teacher.prompt_version,
        "ledger": ledger,
    }
    out = save_output(
        ws,
        STAGE,
        key,
        {"pairs": result.pairs, "rejections": result.rejections},
        result.counts(),
        stats,
    )
    publish_counts_artifact(out)
    publish_ledger_artifact(run_ledger({STAGE: ledger}, cfg.token_budget), ws)
    st = result.stats
    logger.info(
        "generate: %d chunks → %d pairs (%d rejected); %d sent to %s, %d from cache, %d failed, "
        "%d left for a later run; %d prompt + %d completion tokens",
        len(items), len(result.pairs), len(result.rejections), st.requests, teacher.name,
        st.cache_hits, st.failed, st.left, st.prompt_tokens, st.completion_tokens,
    )  # fmt: skip
    return out
