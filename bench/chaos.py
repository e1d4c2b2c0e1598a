"""Chaos: refreshes SIGKILLed at random moments while the teacher endpoint misbehaves, each
re-run until it completes, compared with a fault-free run.

    .venv/bin/python bench/chaos.py                  # 10 runs, seed 0
    .venv/bin/python bench/chaos.py --runs 3 --seed 7 --kill-chance 0.8

Each run is a fresh workspace on a tiny corpus (3 sample documents). The teacher is the fake
OpenAI server (``testsupport/openai_server.py``) behind the fault proxy
(``testsupport/fault_proxy.py``), which fails a share of requests with 500, 429, a dropped
connection or a timeout. Before each attempt a coin decides whether the attempt is killed
(process group, SIGKILL) after a random delay of 10-60 % of the fault-free run's wall time;
at most ``--max-kills`` per run, then it is let finish. A watcher checks every value of
``datasets/LATEST`` it sees names a complete version.
Prints runs, kills, faults injected, records lost and duplicated, partial versions seen, and
whether every final dataset is identical to the fault-free one; exits 1 if any goal is missed.
All processes use one Prefect API (``--api-url``, else a ``prefect server start`` of its own).

    .venv/bin/python bench/chaos.py --damage 40      # 40 damaged workspaces, seed 0

``--damage N``: one workspace is built and re-run once (the reference), then N times a
random file in the built workspace (stage outputs and markers, caches, published versions,
eval versions and state, pointers, Prefect results) is truncated at a random length or
overwritten with random bytes, and the refresh re-run. Each outcome is one of: rebuilt
(published what the undamaged re-run published), stopped naming the damaged
file, then ``faqforge datasets repair`` and a re-run published it (repaired), or stopped naming
the file where repair cannot help (the frozen eval items or a version's manifest lost: the
message says to restore or start a new eval). Goals: 0 wrong publications (a dataset that
differs from the fault-free one), 0 stops that do not name the file.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testsupport.fault_proxy import FaultProxy  # noqa: E402
from testsupport.openai_server import OpenAICompatServer  # noqa: E402
from testsupport.prefect_server import prefect_server  # noqa: E402
from testsupport.refresh_proc import (  # noqa: E402
    LatestWatcher,
    dataset,
    kill_when,
    start_refresh,
    tiny_corpus,
)

# Transient faults only: the teacher retries these. (400 and malformed replies are not
# transient: they end as rejections by design, so they would "lose" records on purpose.)
FAULTS = ("500", "429", "disconnect", "timeout")
TEACHER = ["teacher.kind=openai", "teacher.model=tiny-teacher", "teacher.concurrency=2",
           "teacher.timeout_s=1.5", "teacher.max_retries=8", "teacher.backoff_s=0.05",
           "teacher.backoff_max_s=0.5"]  # fmt: skip


@dataclass
class Report:
    runs: int = 0
    attempts: int = 0
    kills: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    records_lost: int = 0
    duplicates: int = 0
    partial_seen: int = 0
    identical: list[bool] = field(default_factory=list)
    reference_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.records_lost or self.duplicates or self.partial_seen) and all(
            self.identical
        )

    def lines(self) -> str:
        faults = ", ".join(f"{k}: {v}" for k, v in sorted(self.faults.items())) or "none"
        return "\n".join(
            [
                f"runs: {self.runs} ({self.attempts} attempts; "
                f"fault-free run {self.reference_s:.1f} s)",
                f"kills: {self.kills}",
                f"faults injected: {sum(self.faults.values())} ({faults}) "
                f"in {self.requests} teacher requests",
                f"records lost: {self.records_lost} (goal 0)",
                f"duplicate records: {self.duplicates} (goal 0)",
                f"partial versions seen as LATEST: {self.partial_seen} (goal 0)",
                "final dataset identical to the fault-free run: "
                + ("yes" if self.identical and all(self.identical) else "no")
                + f" ({sum(self.identical)}/{len(self.identical)})",
            ]
        )


class ScriptedFaults:
    """Refills the proxy's fault queue with a seeded random script and counts what was used."""

    def __init__(self, proxy: FaultProxy, rng: random.Random, share: float):
        self.proxy, self.rng, self.share = proxy, rng, share
        self.script: list[str | None] = []

    def arm(self, n: int = 2000) -> None:
        weights = (0.35, 0.35, 0.2, 0.1)
        self.script = [
            self.rng.choices(FAULTS, weights)[0] if self.rng.random() < self.share else None
            for _ in range(n)
        ]
        self.proxy.faults.clear()
        self.proxy.faults.extend(self.script)  # type: ignore[arg-type]

    def used(self) -> Counter[str]:
        n = len(self.script) - len(self.proxy.faults)
        return Counter(f for f in self.script[:n] if f is not None)


@contextmanager
def prefect_api(url: str | None, home: Path) -> Iterator[str]:
    if url:
        yield url
        return
    with prefect_server(home) as server:
        yield server.url


def run_chaos(
    runs: int = 10,
    seed: int = 0,
    kill_chance: float = 0.7,
    max_kills: int = 3,
    fault_share: float = 0.15,
    api_url: str | None = None,
    workdir: Path | None = None,
) -> Report:
    rng = random.Random(seed)
    work = workdir or Path(tempfile.mkdtemp(prefix="faqforge-chaos-"))
    corpus, report = tiny_corpus(work / "corpus"), Report()
    with (
        prefect_api(api_url, work / "prefect") as api,
        OpenAICompatServer(delay_s=0.05) as server,
        FaultProxy(server.base_url, hang_s=2.0) as proxy,
    ):
        sets = [*TEACHER, f"teacher.base_url={proxy.base_url}"]
        start = time.monotonic()
        ref = start_refresh(corpus, work / "reference", api, sets, work / "reference.log")
        if ref.wait(timeout=600) != 0:
            raise RuntimeError(f"fault-free run failed: see {work / 'reference.log'}")
        report.reference_s = time.monotonic() - start
        want = dataset(work / "reference")
        want_ids = {r["id"] for r in want["train"] + want["eval"]}
        faults = ScriptedFaults(proxy, rng, fault_share)
        sent_before = len(proxy.requests)
        for i in range(runs):
            ws, log = work / f"run-{i:02d}", work / f"run-{i:02d}.log"
            kills = 0
            with LatestWatcher(ws) as watcher:
                while True:
                    faults.arm()
                    report.attempts += 1
                    proc = start_refresh(corpus, ws, api, sets, log)
                    delay = rng.uniform(0.1, 0.6) * report.reference_s  # mostly mid-run
                    kill = kills < max_kills and rng.random() < kill_chance
                    at = time.monotonic() + delay
                    if kill and kill_when(proc, lambda t=at: time.monotonic() >= t, 600):
                        kills += 1
                    elif proc.wait(timeout=600) == 0:
                        report.faults += faults.used()
                        break
                    else:
                        raise RuntimeError(f"run {i} failed without a kill: see {log}")
                    report.faults += faults.used()
            report.runs += 1
            report.kills += kills
            report.partial_seen += len(watcher.problems)
            got = dataset(ws)
            ids = [r["id"] for r in got["train"] + got["eval"]]
            report.records_lost += len(want_ids - set(ids))
            report.duplicates += sum(n - 1 for n in Counter(ids).values())
            report.identical.append(
                all(got[k] == want[k] for k in ("version", "train", "eval", "rejections"))
            )
        report.requests = len(proxy.requests) - sent_before
    return report


@dataclass
class DamageReport:
    outcomes: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)  # one per damaged workspace
    wrong: list[str] = field(default_factory=list)
    unclear: list[str] = field(default_factory=list)

    @property
    def rounds(self) -> int:
        return sum(self.kinds.values())

    @property
    def ok(self) -> bool:
        return not (self.wrong or self.unclear)

    def lines(self) -> str:
        out = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
        where = ", ".join(f"{k} {v}" for k, v in sorted(self.kinds.items()))
        return "\n".join([
            f"damaged workspaces: {self.rounds} (files: {where})",
            f"outcomes: {out}",
            f"wrong publications: {len(self.wrong)} (goal 0) {self.wrong[:3]}",
            f"stops not naming the damaged file: {len(self.unclear)} (goal 0) {self.unclear[:3]}",
        ])  # fmt: skip


def damage(path: Path, rng: random.Random) -> str:
    """Truncate ``path`` at a random length, or overwrite a random span with random bytes."""
    data = path.read_bytes()
    if not data or rng.random() < 0.5:
        path.write_bytes(data[: rng.randrange(len(data))] if data else b"\xff\x00garbage")
        return "truncated"
    start = rng.randrange(len(data))
    junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    path.write_bytes(data[:start] + junk + data[start + len(junk) :])
    return "garbage"


POINTERS = ("datasets/LATEST", "eval/STATE.json", "runs/LATEST", "runs/CHAMPION")


def kind_of(path: Path, ws: Path) -> str:
    rel = path.relative_to(ws).as_posix()
    return "pointers" if rel in POINTERS else rel.split("/")[0]


def pick(ws: Path, rng: random.Random) -> Path:
    """A file to damage: a kind first (stages, cache, datasets, eval, pointers, models,
    prefect), each as likely, then a file of it; stage and cache files would otherwise be
    nearly every pick."""
    by_kind: dict[str, list[Path]] = {}
    for p in sorted(ws.rglob("*")):
        rel = p.relative_to(ws).parts
        if p.is_file() and not p.is_symlink() and rel[0] not in ("tmp", ".locks"):
            by_kind.setdefault(kind_of(p, ws), []).append(p)
    return rng.choice(by_kind[rng.choice(sorted(by_kind))])


def run_damage(rounds: int, seed: int, api_url: str | None, workdir: Path | None) -> DamageReport:
    import shutil
    import subprocess

    from testsupport.refresh_proc import FAQFORGE, refresh_env

    rng = random.Random(seed)
    work = workdir or Path(tempfile.mkdtemp(prefix="faqforge-damage-"))
    corpus, report = tiny_corpus(work / "corpus"), DamageReport()
    ws, pristine = work / "ws", work / "pristine"

    def refresh(log: Path) -> int:
        return start_refresh(corpus, ws, api, [], log).wait(timeout=600)

    with prefect_api(api_url, work / "prefect") as api:
        if refresh(work / "build.log") != 0:
            raise RuntimeError(f"the first refresh failed: see {work / 'build.log'}")
        shutil.copytree(ws, pristine)
        # The reference is the same re-run on the undamaged workspace (a second refresh, with
        # the eval split frozen by the first, rejects by other rules than the first did).
        if refresh(work / "reference.log") != 0:
            raise RuntimeError(f"the undamaged re-run failed: see {work / 'reference.log'}")
        want = dataset(ws)
        for i in range(rounds):
            shutil.rmtree(ws)
            shutil.copytree(pristine, ws)
            target = pick(ws, rng)
            rel = target.relative_to(ws).as_posix()
            report.kinds[kind_of(target, ws)] += 1
            how = damage(target, rng)
            log = work / f"round-{i:02d}.log"
            outcome = "rebuilt"
            if refresh(log) != 0:
                text = log.read_text(errors="replace")
                if rel not in text and target.parent.relative_to(ws).as_posix() not in text:
                    report.unclear.append(f"{rel} ({how}): see {log}")
                    report.outcomes["unclear stop"] += 1
                    continue
                fix = subprocess.run([*FAQFORGE, "datasets", "repair", "--workspace", str(ws)],
                                     cwd=ROOT, env=refresh_env(api), capture_output=True,
                                     text=True, timeout=120)  # fmt: skip
                if fix.returncode != 0 or refresh(log) != 0:
                    report.outcomes["stopped, repair cannot help"] += 1
                    continue
                outcome = "repaired"
            try:
                got = dataset(ws)
            except AssertionError as exc:
                report.wrong.append(f"{rel} ({how}): {exc}")
                continue
            if any(got[k] != want[k] for k in ("version", "train", "eval", "rejections")):
                report.wrong.append(f"{rel} ({how}): published {got['version']}")
                continue
            report.outcomes[outcome] += 1
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kill-chance", type=float, default=0.7, help="per attempt")
    parser.add_argument("--max-kills", type=int, default=3, help="per run")
    parser.add_argument("--fault-share", type=float, default=0.15, help="of teacher requests")
    parser.add_argument("--api-url", default=None, help="a running Prefect API to use")
    parser.add_argument("--workdir", type=Path, default=None, help="kept for inspection")
    parser.add_argument("--damage", type=int, default=0, metavar="N",
                        help="instead: damage a random workspace file N times")  # fmt: skip
    args = parser.parse_args()
    if args.damage:
        damaged = run_damage(args.damage, args.seed, args.api_url, args.workdir)
        print(damaged.lines())
        sys.exit(0 if damaged.ok else 1)
    report = run_chaos(
        args.runs, args.seed, args.kill_chance, args.max_kills, args.fault_share,
        args.api_url, args.workdir,
    )  # fmt: skip
    print(report.lines())
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
