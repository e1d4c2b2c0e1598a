"""Progress of long work, where the operator is looking.

- On a terminal: a bar on stderr (tqdm).
- Elsewhere (CI, a worker's log, a Prefect run): a log line every ``every_s`` seconds and at
  the end, with done/total, rate and ETA.
- In a Prefect run: a progress artifact on the run's page, updated at most every
  ``artifact_every_s`` seconds (each update is an API call). ``_sync=True``: Prefect's
  artifact functions return a coroutine when called inside an event loop (the teacher's
  requests run in one), which nobody would await.

``extra`` counters (cache hits, failures) ride along in every line and description.

    >>> eta_text(30.0, 10, 40)
    '1m30s'
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, Self, TypeVar

from faqforge.tasking import in_prefect_run

log = logging.getLogger("faqforge")
T = TypeVar("T")


def _run_logger() -> Any:
    """The Prefect run's logger inside a run (its lines reach the UI), else ours."""
    if in_prefect_run():
        from prefect import get_run_logger

        return get_run_logger()
    return log


def eta_text(elapsed_s: float, done: int, total: int) -> str:
    """The time left at the rate so far; ``?`` before anything is done."""
    if done <= 0:
        return "?"
    left = round(elapsed_s / done * max(total - done, 0))
    return f"{left // 60}m{left % 60:02d}s" if left >= 60 else f"{left}s"


class Progress:
    """``with Progress("generate", total, "chunks") as p: ... p.advance(1, cache_hits=1)``."""

    def __init__(
        self,
        what: str,
        total: int,
        unit: str = "items",
        every_s: float = 10.0,
        artifact_every_s: float = 2.0,
        logger: Any = None,
    ):
        self.what, self.total, self.unit = what, total, unit
        self.every_s, self.artifact_every_s = every_s, artifact_every_s
        self.done, self.extra = 0, dict[str, int]()
        self.logger = logger or _run_logger()
        self.start = self.last_log = self.last_artifact = time.monotonic()
        self.bar: Any = None
        self.artifact: Any = None

    def __enter__(self) -> Self:
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc=self.what, unit=f" {self.unit}")
        if in_prefect_run():
            from prefect.artifacts import create_progress_artifact

            self.artifact = create_progress_artifact(0.0, description=self.line(), _sync=True)  # type: ignore[call-arg]
        return self

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        extra = "".join(f", {k.replace('_', ' ')} {v}" for k, v in self.extra.items())
        return (
            f"{self.what}: {self.done}/{self.total} {self.unit}{extra}; "
            f"{rate:.1f}/s, ETA {eta_text(elapsed, self.done, self.total)}"
        )

    def advance(self, n: int = 1, **counts: int) -> None:
        self.done += n
        for name, value in counts.items():
            self.extra[name] = self.extra.get(name, 0) + value
        now = time.monotonic()
        if self.bar is not None:
            self.bar.update(n)
            if self.extra:
                self.bar.set_postfix(self.extra, refresh=False)
        elif now - self.last_log >= self.every_s:
            self.logger.info(self.line())
            self.last_log = now
        if self.artifact is not None and now - self.last_artifact >= self.artifact_every_s:
            self._update_artifact()
            self.last_artifact = now

    def each(self, items: Iterable[T]) -> Iterator[T]:
        """``items``, advancing once per item, inside this progress."""
        with self:
            for item in items:
                yield item
                self.advance()

    def _update_artifact(self) -> None:
        from prefect.artifacts import update_progress_artifact

        share = 100.0 * self.done / self.total if self.total else 100.0
        update_progress_artifact(self.artifact, share, description=self.line(), _sync=True)  # type: ignore[call-arg]

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.artifact is not None:
            self._update_artifact()
        self.logger.info(self.line().replace(", ETA 0s", ""))
