"""Where the data stages' heavy work runs: threads in this process, a Dask or a Ray cluster.

``task_runner(cfg)`` builds the Prefect task runner that ``runner.kind`` names;
``map_shards(task, shards, cfg)`` runs one task per shard on it, inside a subflow (so each
shard is a task run in the UI), and returns the results in shard order. Shards travel to the
workers pickled: they must be plain data, and the tasks importable there (a Dask worker of
a remote cluster needs faqforge installed, e.g. the image in ``docker/``).
Not covered: retries of a lost worker beyond what Dask/Ray do themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from prefect import Task, flow
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from faqforge.config import RunnerConfig


class RunnerError(RuntimeError):
    """The configured runner cannot be built (a missing extra, a bad address)."""


def task_runner(cfg: RunnerConfig) -> TaskRunner[Any]:
    """The Prefect task runner for ``cfg``: a ThreadPool, a DaskTaskRunner or a RayTaskRunner.

    Without ``address``, Dask starts a LocalCluster of ``workers`` processes (one thread each:
    MinHash is CPU-bound numpy and hashlib, so processes, not threads, add cores) and Ray a
    local instance with ``workers`` CPUs; both are torn down when the subflow ends.
    """
    if cfg.kind == "thread":
        return ThreadPoolTaskRunner(max_workers=cfg.workers)
    if cfg.kind == "dask":
        from prefect_dask import DaskTaskRunner

        if cfg.address:
            return DaskTaskRunner(address=cfg.address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": cfg.workers,
                "threads_per_worker": 1,
                "processes": True,
                # No dashboard: two runs on one host would fight over port 8787.
                "dashboard_address": None,
            }
        )
    try:
        from prefect_ray import RayTaskRunner
    except ImportError as exc:
        raise RunnerError(
            "runner.kind=ray needs prefect-ray, which is not installed: "
            "pip install 'faqforge[ray]' (or set runner.kind to thread or dask)"
        ) from exc
    if cfg.address:
        return RayTaskRunner(address=cfg.address)
    return RayTaskRunner(init_kwargs={"num_cpus": cfg.workers})


def map_shards(task: Task[..., Any], shards: Sequence[Any], cfg: RunnerConfig) -> list[Any]:
    """``[task(shard) for shard in shards]``, computed on the runner ``cfg`` names.

    The runner is built before the subflow starts, so a configuration error (ray missing)
    surfaces here, not as a failed task run.
    """
    runner = task_runner(cfg)

    # Shards go in and results come out through the closure, not as flow parameters and
    # return value: Prefect stores a flow run's parameters in its database, and a subflow
    # called inside a task persists its return value with that task's result settings
    # (JSON, on disk): shards and signatures can be large, and arrays are not JSON.
    results: list[Any] = []

    @flow(name=f"{task.name}-shards", task_runner=runner, validate_parameters=False)
    def fan_out() -> None:
        results.extend(future.result() for future in task.map(list(shards)))

    with _shared_api() if cfg.kind != "thread" else nullcontext():
        fan_out()
    return results


def _shared_api() -> AbstractContextManager[Any]:
    """Point the workers at this process's API when no PREFECT_API_URL is set.

    The embedded default runs on a temporary server that only this process knows; a worker
    process given no URL would start one of its own (10-20 s each). The runner hands the
    settings in force to its workers, so setting the URL here is enough.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        return nullcontext()
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the one this process started (one instance per port)
    server.start()  # already running: returns at once
    return temporary_settings({PREFECT_API_URL: server.api_url})
