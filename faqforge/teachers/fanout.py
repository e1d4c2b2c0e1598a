"""One fan-out of model requests per chunk, shared by generate and judge.

Both stages send one request per chunk and must agree on what happens around it: a cached
reply is reused (unless ``force``), the token budget is checked before each send, the
Prefect slot is held only while a request is in flight, every attempt is billed in the
ledger, each reply is cached the moment it arrives, a crash cancels what is still pending,
and too large a share of failed chunks fails the stage (after caching what was answered).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from faqforge.config import TeacherConfig
from faqforge.progress import Progress
from faqforge.records import Chunk, Rejection
from faqforge.teachers.base import TeacherError, Usage
from faqforge.teachers.ledger import Budget, Ledger
from faqforge.teachers.orchestration import Slot

T = TypeVar("T")

# Not a failure: the chunk was never sent. The next run (with budget) sends it.
BUDGET_SPENT = TeacherError("budget_exhausted", "teacher.token_budget was spent; not sent")


class Billed(Protocol):
    """A reply that knows the requests it took (a retried bad reply took several)."""

    @property
    def calls(self) -> Sequence[Usage]: ...


class Closable(Protocol):
    async def aclose(self) -> None: ...


R = TypeVar("R", bound=Billed)


@dataclass(frozen=True)
class Ask(Generic[R]):
    """One request: the chunk it is billed to, its cache file, and how to send it."""

    chunk: Chunk
    path: Path
    send: Callable[[], Awaitable[R]]


class Traffic(BaseModel):
    """This run's requests: a re-run over unchanged chunks has ``requests == 0``.

    ``requests`` counts chunks sent (a chunk retried after a bad reply is one); the ledger
    counts every HTTP request. ``left``: chunks not sent because the token budget ran out.
    A teacher stage's stats add the prompt version and the ledger summary, and its
    subclass names the model (``GenerateStats.teacher``, ``JudgeStats.judge``).
    """

    requests: int = 0
    cache_hits: int = 0
    failed: int = 0
    left: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_version: str = ""
    ledger: dict[str, Any] = {}


@dataclass
class FannedOut(Generic[R]):
    """Each ask's reply or error, in the order asked, and the ledger of what was sent."""

    outcomes: list[R | TeacherError]
    ledger: Ledger
    stats: Traffic = field(default_factory=Traffic)


def rejection(stage: str, chunk: Chunk, err: TeacherError) -> Rejection:
    return Rejection(
        record_id=chunk.chunk_id,
        stage=stage,
        reason=err.reason,
        detail=err.detail,
        record={"chunk_id": chunk.chunk_id, "source": chunk.source, "raw": err.raw},
    )


class ChunksFailed(RuntimeError):
    """More chunks failed than ``teacher.max_failure_share`` allows; answered ones are cached."""

    def __init__(self, rejections: list[Rejection], n_chunks: int, cfg: TeacherConfig, stage: str):
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


def retry_if_transient(_task: Any, _run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry a failed teacher stage only on HTTP failures."""
    return isinstance(state.data, ChunksFailed) and state.data.transient


async def fan_out(
    stage: str,
    asks: Sequence[Ask[R]],
    cfg: TeacherConfig,
    client: Closable,
    read: Callable[[Path], R | None],
    write: Callable[[Path, R], None],
    stats: Traffic | None = None,
    budget: Budget | None = None,
    slot: Slot | None = None,
    force: bool = False,
    logger: Any = None,
) -> FannedOut[R]:
    """Send every uncached ask, ``cfg.concurrency`` at a time, and close ``client`` after.

    ``stats`` (a ``Traffic`` or a stage's subclass) is filled in. ``slot`` (optional) is
    entered around each request: a Prefect global limit shared with other flows. Raises
    ChunksFailed when the share of failed chunks exceeds ``cfg.max_failure_share``.
    """
    stats = stats if stats is not None else Traffic()
    ledger = Ledger(stage, cfg)
    budget = budget or Budget(cfg.token_budget)
    limit = asyncio.Semaphore(cfg.concurrency)

    async def answer(ask: Ask[R]) -> R | TeacherError:
        hits = stats.cache_hits
        outcome = await send(ask)
        failed = isinstance(outcome, TeacherError) and outcome is not BUDGET_SPENT
        progress.advance(1, cache_hits=stats.cache_hits - hits, failed=int(failed))
        return outcome

    async def send(ask: Ask[R]) -> R | TeacherError:
        if not force and (cached := read(ask.path)) is not None:
            stats.cache_hits += 1
            return cached
        async with limit:
            if not budget.allows():
                return BUDGET_SPENT
            stats.requests += 1
            try:
                async with slot() if slot else nullcontext():
                    reply = await ask.send()
            except TeacherError as err:
                budget.spend(err.usage)
                ledger.add(ask.chunk, err.calls)
                return err
        for usage in reply.calls:
            budget.spend(usage)
        ledger.add(ask.chunk, reply.calls)
        write(ask.path, reply)  # an empty reply is an answer too: a re-run does not ask again
        return reply

    progress = Progress(stage, len(asks), "chunks", logger=logger)
    jobs = [asyncio.ensure_future(answer(a)) for a in asks]
    try:
        with progress:
            outcomes = await asyncio.gather(*jobs)
    finally:
        for pending in jobs:  # after a crash, stop asking: what was answered is cached
            pending.cancel()
        await client.aclose()

    failures = []
    for ask, outcome in zip(asks, outcomes, strict=True):
        if outcome is BUDGET_SPENT:
            stats.left += 1
        elif isinstance(outcome, TeacherError):
            failures.append(rejection(stage, ask.chunk, outcome))
    stats.failed = len(failures)
    ledger.left = stats.left
    stats.prompt_tokens = sum(r.prompt_tokens for r in ledger.rows)
    stats.completion_tokens = sum(r.completion_tokens for r in ledger.rows)
    if asks and stats.failed / len(asks) > cfg.max_failure_share:
        raise ChunksFailed(failures, len(asks), cfg, stage)
    return FannedOut(outcomes, ledger, stats)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, also when the caller's thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
