"""Where a result came from: the code version that produced it, and the chain document set →
dataset version → adapter → eval report as Prefect assets.

Each flow emits one asset materialization (``prefect.asset.materialization.succeeded`` events
with the upstream assets as related resources, shown in the UI's asset views) and a ``lineage``
markdown artifact with the chain read back from the workspace (``lineage_query``). Keys are
locations: ``<storage.remote_url>/datasets/<version>`` when a remote is configured, so workers
sharing it name the same dataset alike; else ``file://<workspace>/datasets/<version>``.
The open-source server keeps these as events (``POST /api/events/filter``); it has no asset
graph endpoint.
"""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faqforge
from faqforge.artifacts import artifact_key
from faqforge.config import PipelineConfig
from faqforge.lineage_query import dataset_lineage, render, run_lineage
from faqforge.storage import Workspace
from faqforge.tasking import in_prefect_run

if TYPE_CHECKING:
    from tasks.finetune import Trained
    from tasks.publish import Published


@cache
def code_version() -> dict[str, str | bool | None]:
    """Package version plus the git commit (and whether the tree was dirty), if in a checkout."""
    repo = Path(faqforge.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {"faqforge": faqforge.__version__, "git_commit": commit, "git_dirty": dirty}


# Prefect refuses these in asset keys; a path holding one gets "_" there (the key is a name).
RESTRICTED = frozenset(" #?&%\"'<>[]{}|\\^`\n\r\t\0")


def asset_key(url: str) -> str:
    """A Prefect asset key for a location URL (``file:///…``, ``s3://…``)."""
    return "".join("_" if c in RESTRICTED else c for c in url)


def location(cfg: PipelineConfig, rel: str) -> str:
    """Where workspace path ``rel`` lives durably: on the remote when one is configured (every
    worker then names a dataset alike), else in this workspace."""
    if cfg.storage.remote_url:
        return f"{cfg.storage.remote_url.rstrip('/')}/{rel}"
    return f"file://{cfg.workspace / rel}"


def model_location(base_model: str) -> str:
    """A local model folder, or a hub name (``hf://`` names it; nothing is fetched)."""
    return (
        f"file://{Path(base_model).resolve()}"
        if Path(base_model).is_dir()
        else f"hf://{base_model}"
    )


def _asset(url: str, name: str, description: str | None = None) -> Any:
    from prefect.assets import Asset, AssetProperties

    return Asset(key=asset_key(url), properties=AssetProperties(name=name, description=description))


def _materialize(
    asset: Any, upstream: list[Any], metadata: dict[str, Any], chain: str, ws: Workspace
) -> None:
    """Emit one materialization of ``asset`` with its upstream assets, and the chain as the
    flow run's ``lineage`` artifact. Outside a Prefect run there is nothing to report to."""
    if not in_prefect_run():
        return
    from prefect.artifacts import create_markdown_artifact
    from prefect.assets import add_asset_metadata, materialize
    from prefect.cache_policies import NO_CACHE

    # A cached run emits no events, so each flow run records afresh.
    @materialize(
        asset,
        asset_deps=upstream,
        name=f"lineage-{asset.properties.name.split()[0]}",
        cache_policy=NO_CACHE,
        persist_result=False,
    )
    def record(metadata: dict[str, Any]) -> None:
        add_asset_metadata(asset, metadata)

    record(metadata)
    create_markdown_artifact(
        key=artifact_key("lineage", ws), markdown=chain, description=f"lineage of {asset.key}"
    )


def with_env(
    cfg: PipelineConfig, metadata: dict[str, Any], chain: str
) -> tuple[dict[str, Any], str]:
    """The metadata and chain, plus what ``FAQFORGE__*`` variables changed in the config:
    a deployment run's parameters do not show them, so its artifact must."""
    if not cfg.env_overrides:
        return metadata, chain
    changed = ", ".join(f"`{k}={v}`" for k, v in sorted(cfg.env_overrides.items()))
    note = f"\n\nConfig changed by FAQFORGE__* environment variables: {changed}\n"
    return {**metadata, "env_overrides": cfg.env_overrides}, chain + note


def record_dataset(summary: Published, cfg: PipelineConfig) -> None:
    """Corpus → dataset version (refresh flow)."""
    ws = Workspace(cfg.workspace)
    info = dataset_lineage(ws, summary["version"])
    corpus = _asset(f"file://{cfg.source}", "corpus", f"{len(info['documents'])} documents")
    dataset = _asset(location(cfg, f"datasets/{info['version']}"), f"dataset {info['version']}")
    meta = {k: info[k] for k in ("counts", "content_hash", "prompt_version", "teacher_model")}
    documents = {"documents": len(info["documents"])}
    _materialize(dataset, [corpus], *with_env(cfg, meta | documents, render(info)), ws)


def record_adapter(summary: Trained, cfg: PipelineConfig) -> None:
    """Dataset version + base model → adapter (finetune flow)."""
    info = run_lineage(Workspace(cfg.workspace), summary["run_id"])
    rid, version = info["run_id"], info["dataset_version"]
    upstream = [
        _asset(location(cfg, f"datasets/{version}"), f"dataset {version}"),
        _asset(model_location(info["base_model"]), "base model"),
    ]
    adapter = _asset(location(cfg, f"runs/{rid}/adapter"), f"adapter {rid}")
    meta = {k: info[k] for k in ("dataset_version", "base_model", "steps", "train_loss_last")}
    _materialize(adapter, upstream, *with_env(cfg, meta, render(info)), Workspace(cfg.workspace))


def record_report(run_id: str, cfg: PipelineConfig) -> None:
    """Adapter + dataset version (its eval split) → evaluation report (evaluate flow)."""
    info = run_lineage(Workspace(cfg.workspace), run_id)
    version, ev = info["dataset_version"], info["evaluation"]
    upstream = [
        _asset(location(cfg, f"runs/{run_id}/adapter"), f"adapter {run_id}"),
        _asset(location(cfg, f"datasets/{version}"), f"dataset {version}"),
    ]
    report = _asset(location(cfg, f"runs/{run_id}/eval/report.md"), f"report {run_id}")
    meta = {"promoted": ev["promoted"], "n": ev["n"], "base": ev["base"], "tuned": ev["tuned"]}
    _materialize(report, upstream, *with_env(cfg, meta, render(info)), Workspace(cfg.workspace))
