"""Where ``faqforge run all``'s wall time goes: the stages' own work against everything else.

    .venv/bin/python bench/orchestration.py [--set finetune.max_steps=20 ...]

Runs ``faqforge run all`` on the bundled sample corpus as a user does (its own process, a
fresh workspace and a fresh Prefect home, so the embedded API starts from nothing), times the
whole command, then reads that run's task runs back from the Prefect database it wrote. A
stage's own work is the time its task run was Running; what lies outside every task run is
orchestration: interpreter start, imports, config checks, the temporary server's start-up and
stop, and Prefect's bookkeeping between tasks (state changes, cache lookups, result writes).

Printed: each flow's and task's own seconds, the time before the first task started and after
the last ended, and the outside share of the wall time. Goal (issue 15): under 20%.
``--set`` passes overrides to the run (fewer training steps make the share larger).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_all(work: Path, overrides: list[str]) -> tuple[float, float, dict[str, str]]:
    """``faqforge run all`` in its own process: (wall seconds, epoch at its start, its env)."""
    env = {**os.environ, "PREFECT_HOME": str(work / "prefect-home")}
    env.pop("PREFECT_API_URL", None)  # the embedded API, as on a laptop
    cli = str(Path(sys.executable).with_name("faqforge"))
    cmd = [cli, "run", "all", "--config", str(ROOT / "configs" / "default.yaml"),
           "--workspace", str(work / "ws")]  # fmt: skip
    for item in overrides:
        cmd += ["--set", item]
    began, start = time.time(), time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"faqforge run all failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, began, env


def intervals(env: dict[str, str]) -> list[tuple[str, datetime, datetime]]:
    """(task name, start, end) of every task run in the Prefect home the run wrote."""
    os.environ.update({k: v for k, v in env.items() if k.startswith("PREFECT_")})
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.client.orchestration import get_client

    async def read() -> list[tuple[str, datetime, datetime]]:
        async with get_client() as client:
            runs, flows = [], []
            while page := await client.read_task_runs(limit=200, offset=len(runs)):
                runs += page
            while page := await client.read_flow_runs(limit=200, offset=len(flows)):
                flows += page
        # A subflow call shows as a task run of its parent flow; its tasks count, it does not.
        subflows = {f.parent_task_run_id for f in flows}
        return [
            (r.name, r.start_time, r.end_time)
            for r in runs
            if r.start_time and r.end_time and r.id not in subflows
        ]

    return asyncio.run(read())


def union_seconds(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one span (concurrent task runs count once)."""
    total, reach = 0.0, float("-inf")
    for lo, hi in sorted(spans):
        if hi > reach:
            total += hi - max(lo, reach)
            reach = hi
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="faqforge-bench-orchestration-"))
    wall, began, env = run_all(work, args.overrides)
    runs = intervals(env)
    spans = [(s.timestamp() - began, e.timestamp() - began) for _, s, e in runs]
    own = union_seconds(spans)
    per_stage: dict[str, float] = defaultdict(float)
    for name, s, e in runs:
        per_stage[name.rsplit("-", 1)[0]] += (e - s).total_seconds()
    print(f"faqforge run all on the sample corpus {' '.join(args.overrides)}".rstrip())
    print(f"{'stage (task runs)':<32}{'own s':>9}")
    for name, seconds in sorted(per_stage.items(), key=lambda kv: -kv[1]):
        print(f"{name:<32}{seconds:9.1f}")
    first, last = min(lo for lo, _ in spans), max(hi for _, hi in spans)
    outside = wall - own
    print(f"\nwall time of the command:        {wall:7.1f} s")
    print(f"stages' own work ({len(runs)} task runs):  {own:7.1f} s = {own / wall:.1%}")
    print(f"before the first task started:   {first:7.1f} s (start-up, imports, API start)")
    print(f"after the last task ended:       {wall - last:7.1f} s (reports, API stop)")
    print(f"between tasks:                   {last - first - own:7.1f} s (Prefect bookkeeping)")
    print(f"outside the stages:              {outside:7.1f} s = {outside / wall:.1%} "
          f"of the wall time (goal < 20%)")  # fmt: skip


if __name__ == "__main__":
    main()
