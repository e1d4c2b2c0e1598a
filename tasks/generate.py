"""Generate: chunks → question/answer pairs from a teacher, cached per chunk by content.

A chunk's reply is cached under ``cache/teacher/<key[:2]>/<key>.json`` as soon as it
arrives, keyed by the chunk's text hash and heading path, the number of pairs asked for,
the teacher's model name and prompt version, and the teacher settings that change what it
writes. A re-run over unchanged chunks sends nothing; a run killed half-way sends only what
is left. Failed chunks become rejections (with the raw reply) and are never cached, so the
next run asks again. Too many failures fail the stage.
Not handled: a teacher that answers differently for the same key (temperature > 0) is
asked once; its cached answer stands until the key changes.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from faqforge.config import TeacherConfig, stable_hash
from faqforge.records import Chunk, QAPair, Rejection
from faqforge.stage import StageCounts, StageOutput, module_hash, save_output, stage_key
from faqforge.storage import Workspace, read_json, write_json
from faqforge.tasking import IO_RETRIES, in_prefect_run, publish_counts_artifact
from faqforge.teachers import Teacher, TeacherError, TeacherReply, Usage, make_teacher

STAGE = "generate"
log = logging.getLogger(__name__)
T = TypeVar("T")


def pairs_for_chunk(n_tokens: int, cfg: TeacherConfig) -> int:
    """Pairs to ask for: ``pairs_for_chunk(256, TeacherConfig())`` → 5 (2 per 100, in [2, 8])."""
    wanted = round(n_tokens / 100 * cfg.pairs_per_100_tokens)
    return max(cfg.min_pairs, min(cfg.max_pairs, wanted))


def cache_key(chunk: Chunk, n_pairs: int, teacher: Teacher, cfg: TeacherConfig) -> str:
    """Everything that changes what the teacher writes for this chunk; its source does not."""
    parts = [chunk.text_hash, chunk.heading_path, n_pairs, teacher.prompt_version, teacher.name]
    return stable_hash([*parts, cfg.content_key()], length=32)


def cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.json"


def read_cached(path: Path) -> TeacherReply | None:
    """The cached reply, or None when absent or unreadable (then it is asked again)."""
    if not path.is_file():
        return None
    try:
        data = read_json(path)
        pairs = [(str(q), str(a)) for q, a in data["pairs"]]
        usage = Usage(**data["usage"])
        return TeacherReply(pairs=pairs, usage=usage, raw=data["raw"])
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("unreadable teacher cache file %s (%s): asking the teacher again", path, exc)
        return None


def write_cached(path: Path, reply: TeacherReply, teacher: Teacher) -> None:
    write_json(
        path,
        {
            "teacher": teacher.name,
            "prompt_version": teacher.prompt_version,
            "pairs": [list(p) for p in reply.pairs],
            "usage": asdict(reply.usage),
            "raw": reply.raw,
        },
    )


def make_pairs(chunk: Chunk, reply: TeacherReply, teacher: Teacher) -> list[QAPair]:
    """QAPair records with lineage; the id hashes chunk, question and answer, so it is stable."""
    pairs: dict[str, QAPair] = {}
    for question, answer in reply.pairs:
        pair_id = "qa-" + stable_hash([chunk.chunk_id, question, answer])
        pairs.setdefault(
            pair_id,
            QAPair(
                id=pair_id,
                question=question,
                answer=answer,
                doc_id=chunk.doc_id,
                chunk_id=chunk.chunk_id,
                source=chunk.source,
                prompt_version=teacher.prompt_version,
                teacher=teacher.name,
                heading_path=list(chunk.heading_path),
            ),
        )
    return list(pairs.values())


@dataclass
class GenerateStats:
    """This run's teacher traffic: a re-run over unchanged chunks has requests == 0."""

    requests: int = 0
    cache_hits: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    duplicate_pairs: int = 0

    def spend(self, usage: Usage) -> None:
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens


@dataclass
class GenerateResult:
    pairs: list[QAPair]
    rejections: list[Rejection]
    n_chunks: int
    stats: GenerateStats = field(default_factory=GenerateStats)

    def counts(self) -> StageCounts:
        answered = self.n_chunks - len(self.rejections)
        return StageCounts.of(self.n_chunks, answered, self.rejections, produced=len(self.pairs))

    def content_hash(self) -> str:
        return stable_hash([r.to_dict() for r in [*self.pairs, *self.rejections]])


class GenerateFailed(RuntimeError):
    """More chunks failed than ``teacher.max_failure_share`` allows; answered ones are cached."""

    def __init__(self, rejections: list[Rejection], n_chunks: int, cfg: TeacherConfig):
        self.rejections = rejections
        first = "; ".join(
            f"{r.record_id} ({r.record['source']}): {r.detail}" for r in rejections[:3]
        )
        where = f" ({cfg.model} at {cfg.base_url})" if cfg.kind == "openai" else ""
        super().__init__(
            f"generate: {len(rejections)} of {n_chunks} chunks failed, more than "
            f"teacher.max_failure_share={cfg.max_failure_share}. First: {first}. Check the "
            f"{cfg.kind} teacher{where} (the task log shows raw replies); a re-run sends only "
            "the failed chunks."
        )

    @property
    def transient(self) -> bool:
        """Only HTTP failures may pass by themselves; a bad prompt or parser will not."""
        return all(r.reason == "http_error" for r in self.rejections)


def _rejection(chunk: Chunk, err: TeacherError) -> Rejection:
    return Rejection(
        record_id=chunk.chunk_id,
        stage=STAGE,
        reason=err.reason,
        detail=err.detail,
        record={"chunk_id": chunk.chunk_id, "source": chunk.source, "raw": err.raw},
    )


async def generate_for_chunks(
    chunks: Sequence[Chunk], teacher: Teacher, cache_dir: Path, cfg: TeacherConfig
) -> GenerateResult:
    """Ask the teacher about every uncached chunk, ``cfg.concurrency`` at a time.

    Each reply is cached the moment it arrives. Raises GenerateFailed (after caching) when
    the share of failed chunks exceeds ``cfg.max_failure_share``.
    """
    stats = GenerateStats()
    limit = asyncio.Semaphore(cfg.concurrency)

    async def answer(chunk: Chunk) -> TeacherReply | TeacherError:
        n_pairs = pairs_for_chunk(chunk.n_tokens, cfg)
        path = cache_path(cache_dir, cache_key(chunk, n_pairs, teacher, cfg))
        if (cached := read_cached(path)) is not None:
            stats.cache_hits += 1
            return cached
        async with limit:
            stats.requests += 1
            try:
                reply = await teacher.generate(chunk, n_pairs)
            except TeacherError as err:
                stats.spend(err.usage)
                return err
        stats.spend(reply.usage)
        # An empty reply is an answer too: cached, so a re-run does not ask again.
        write_cached(path, reply, teacher)
        return reply

    jobs = [asyncio.ensure_future(answer(c)) for c in chunks]
    try:
        outcomes = await asyncio.gather(*jobs)
    finally:
        for pending in jobs:  # after a crash, stop asking: what was answered is cached
            pending.cancel()
        await teacher.aclose()

    result = GenerateResult(pairs=[], rejections=[], n_chunks=len(chunks), stats=stats)
    for chunk, outcome in zip(chunks, outcomes, strict=True):
        if isinstance(outcome, TeacherError):
            result.rejections.append(_rejection(chunk, outcome))
            stats.failed += 1
            continue
        if not outcome.pairs:
            empty = TeacherError("no_pairs", "the teacher found nothing to ask", outcome.raw)
            result.rejections.append(_rejection(chunk, empty))
            continue
        made = make_pairs(chunk, outcome, teacher)
        stats.duplicate_pairs += len(outcome.pairs) - len(made)
        result.pairs += made
    if chunks and stats.failed / len(chunks) > cfg.max_failure_share:
        failures = [r for r in result.rejections if r.reason != "no_pairs"]
        raise GenerateFailed(failures, len(chunks), cfg)
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
def generate(chunks: StageOutput, cfg: TeacherConfig, workspace: str) -> StageOutput:
    """QA pairs for every chunk. Never cached as a whole: the per-chunk cache makes a re-run
    free, and its stats must say what this run sent (``requests``) and reused (``cache_hits``).
    """
    ws = Workspace(Path(workspace))
    teacher = make_teacher(cfg)
    items = chunks.read("chunks", Chunk)
    logger = get_run_logger() if in_prefect_run() else log
    try:
        result = run_sync(generate_for_chunks(items, teacher, ws.teacher_cache, cfg))
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
        cfg.content_key(),
        module_hash(sys.modules[__name__]),
        result.content_hash(),
    )
    stats = {
        **asdict(result.stats),
        "teacher": teacher.name,
        "prompt_version": teacher.prompt_version,
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
    logger.info("generate: %s %s", out.counts.as_dict(), stats)
    return out
