"""The Prefect side of a stage: one ``@stage`` decorator for keys, skipping finished work,
saving the output folder and its count artifact.

A stage function takes its inputs and returns ``(outputs, counts, stats)``; ``@stage``
makes it a ``@task`` that returns the saved ``StageOutput``. Its key hashes the inputs'
content, the config and the module source (``params_key``), and either

- ``key_on="inputs"`` (the default): a finished output under the key is returned without
  computing, and Prefect's cache uses the same key, but only while the stage folder still
  exists, so a deleted workspace never yields a dangling result; or
- ``key_on="output"``: the stage runs every time (ingest reads the corpus; generate and
  judge ask per chunk through their own cache, and their stats say what this run sent) and
  the key also hashes what it computed, so a changed output gets a folder of its own; a
  folder with the same output and stats is kept as it is.
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, ParamSpec

from pydantic import BaseModel

from faqforge.artifacts import artifact_key, stage_workspace
from faqforge.config import stable_hash
from faqforge.records import Record
from faqforge.stage import (
    StageCounts,
    StageOutput,
    finished_output,
    module_hash,
    save_output,
    stage_key,
)
from faqforge.storage import Workspace

if TYPE_CHECKING:
    from prefect import Task

# Tasks that call a network service retry; pure compute stages do not.
IO_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": [2, 5, 15],
    "retry_jitter_factor": 0.5,
}


def params_key(stage: str, module: ModuleType, params: dict[str, Any]) -> str:
    """The content key of a stage run: same inputs, config and stage code → same key."""
    return stage_key(stage, module_hash(module), *[params[k] for k in sorted(params)])


KeyParams = Callable[[dict[str, Any]], dict[str, Any]]


def stage_cache_key_fn(
    stage: str, module: ModuleType, key_params: KeyParams | None = None
) -> Callable[[Any, dict[str, Any]], str | None]:
    """A Prefect ``cache_key_fn`` that never serves a result whose stage folder is gone.

    A stored result whose folder was deleted would hand downstream tasks a dangling path:
    then the key is withheld (None), the task runs and rebuilds the folder.
    """

    def key_fn(ctx: Any, params: dict[str, Any]) -> str | None:
        key = params_key(stage, module, key_params(params) if key_params else params)
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


Outputs = Mapping[str, Any]  # file name → its records (``Record``s or dicts)
# Stats as a dict, or as the pydantic model downstream stages read them through.
Computed = tuple[Outputs, StageCounts, dict[str, Any] | BaseModel]
KeyOn = Literal["inputs", "output"]
P = ParamSpec("P")


def content_hash(outputs: Outputs) -> str:
    rows = {k: [r.to_dict() if isinstance(r, Record) else r for r in v] for k, v in outputs.items()}
    return stable_hash(rows)


def run_stage(
    stage: str,
    module: ModuleType,
    params: dict[str, Any],
    compute: Callable[[], Computed],
    key_on: KeyOn = "inputs",
) -> StageOutput:
    """The finished output for these params (``key_on="inputs"``), or compute, save and
    report it. ``params`` are the key's parts (including ``workspace``)."""
    ws = Workspace(Path(params["workspace"]))
    if key_on == "inputs":
        key = params_key(stage, module, params)
        if (done := finished_output(ws, stage, key)) is not None:
            return done
    outputs, counts, computed = compute()
    stats = computed.model_dump(mode="json") if isinstance(computed, BaseModel) else computed
    if key_on == "output":
        key = params_key(stage, module, {**params, "output": content_hash(outputs)})
        done = finished_output(ws, stage, key)
        if done is not None and done.stats == json.loads(json.dumps(stats, default=str)):
            return done  # the same output and stats: kept, not rewritten
    out = save_output(ws, stage, key, outputs, counts, stats)
    publish_counts_artifact(out)
    return out


def stage(
    name: str,
    key_on: KeyOn = "inputs",
    key_params: KeyParams | None = None,
    after: Callable[[StageOutput, dict[str, Any]], None] | None = None,
    **task_options: Any,
) -> Callable[[Callable[P, Computed]], Task[P, StageOutput]]:
    """``@stage("curate")`` over ``def curate(pairs, cfg, workspace) -> (outputs, counts,
    stats)``: the stage's one ``@task`` block. ``key_params`` maps the call's parameters to
    the key's parts (dropping what does not change the output); ``after(out, params)`` runs
    on every call, also when the output was found (artifacts, log lines)."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    def wrap(fn: Callable[P, Computed]) -> Task[P, StageOutput]:
        module = sys.modules[fn.__module__]
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> StageOutput:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            params = dict(bound.arguments)
            keyed = key_params(params) if key_params else params
            out = run_stage(name, module, keyed, lambda: fn(*args, **kwargs), key_on)
            if after is not None:
                after(out, params)
            return out

        caching: dict[str, Any] = (
            {"cache_key_fn": stage_cache_key_fn(name, module, key_params),
             "persist_result": True, "result_serializer": "json"}
            if key_on == "inputs"
            else {"cache_policy": NO_CACHE}
        )  # fmt: skip
        return task(name=name, **caching, **task_options)(run)

    return wrap


def in_prefect_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return TaskRunContext.get() is not None or FlowRunContext.get() is not None
