"""The Prefect side of a stage: cache keys, skipping finished work, and count artifacts.

Each ``@task`` in ``tasks/`` computes its output key from its inputs' content hashes, its
config and its module source (``params_key``). Prefect's cache uses the same key, but only
while the stage folder still exists, so a deleted workspace never yields a dangling result.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from faqforge.artifacts import artifact_key, stage_workspace
from faqforge.stage import (
    StageCounts,
    StageOutput,
    finished_output,
    module_hash,
    save_output,
    stage_key,
)
from faqforge.storage import Workspace

# Tasks that call a network service retry; pure compute stages do not.
IO_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": [2, 5, 15],
    "retry_jitter_factor": 0.5,
}


def params_key(stage: str, module: ModuleType, params: dict[str, Any]) -> str:
    """The content key of a stage run: same inputs, config and stage code → same key."""
    return stage_key(stage, module_hash(module), *[params[k] for k in sorted(params)])


def stage_cache_key_fn(
    stage: str, module: ModuleType
) -> Callable[[Any, dict[str, Any]], str | None]:
    """A Prefect ``cache_key_fn`` that never serves a result whose stage folder is gone.

    A stored result whose folder was deleted would hand downstream tasks a dangling path:
    then the key is withheld (None), the task runs and rebuilds the folder.
    """

    def key_fn(ctx: Any, params: dict[str, Any]) -> str | None:
        key = params_key(stage, module, params)
        if finished_output(Workspace(Path(params["workspace"])), stage, key) is not None:
            return key
        store = getattr(ctx, "result_store", None)
        return None if store is not None and store.exists(key) else key

    return key_fn


def publish_counts_artifact(out: StageOutput) -> None:
    """A table artifact with the stage's in/out/rejected counts, visible on the flow run."""
    from prefect.artifacts import create_table_artifact

    if not in_prefect_run():
        return

    rows = [{"metric": "in", "value": out.counts.in_}, {"metric": "out", "value": out.counts.out}]
    if out.counts.produced is not None:
        rows.append({"metric": "produced", "value": out.counts.produced})
    rows += [
        {"metric": f"rejected: {r}", "value": n} for r, n in sorted(out.counts.rejected.items())
    ]
    rows += [
        {"metric": k, "value": v}
        for k, v in sorted(out.stats.items())
        if isinstance(v, int | float)
    ]
    create_table_artifact(
        key=artifact_key(f"{out.stage.replace('_', '-')}-counts", stage_workspace(out.dir)),
        table=rows,
        description=f"{out.stage}: records in/out/rejected (output {out.key})",
    )


Compute = Callable[[], tuple[dict[str, Any], StageCounts, dict[str, Any]]]


def run_stage(
    stage: str, module: ModuleType, params: dict[str, Any], compute: Compute
) -> StageOutput:
    """Return the finished output for these params, or compute, save and report it.

    ``params`` are the task's own parameters (including ``workspace``); ``compute`` returns
    ``(outputs, counts, stats)`` where outputs maps a file name to its records.
    """
    ws = Workspace(Path(params["workspace"]))
    key = params_key(stage, module, params)
    if (done := finished_output(ws, stage, key)) is not None:
        return done
    outputs, counts, stats = compute()
    out = save_output(ws, stage, key, outputs, counts, stats)
    publish_counts_artifact(out)
    return out


def in_prefect_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return TaskRunContext.get() is not None or FlowRunContext.get() is not None
