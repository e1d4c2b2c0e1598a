"""The ``faqforge`` command: run flows, show the resolved config.

Heavy modules (Prefect, torch) are imported inside the commands, so ``faqforge --help``
answers at once.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from faqforge.config import DEFAULT_CONFIG, ConfigError, PipelineConfig, load_run_config
from faqforge.preflight import preflight
from faqforge.stage_front import stage_app  # stage_cli's commands plus ingest, chunk, generate

# Plain help (rich_markup_mode=None): typer's rich panels label every flag `<bool>`.
app = typer.Typer(
    help="Documents in; a validated QA dataset and a fine-tuned FAQ model out.",
    rich_markup_mode=None,
    no_args_is_help=True,
    add_completion=False,
)
run_app = typer.Typer(
    help="Run a flow on the embedded Prefect API (or PREFECT_API_URL).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Inspect configuration.", no_args_is_help=True, rich_markup_mode=None)
datasets_app = typer.Typer(
    help="Published dataset versions.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(run_app, name="run")
app.add_typer(config_app, name="config")
app.add_typer(datasets_app, name="datasets")
app.add_typer(stage_app, name="stage")


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import version

        typer.echo(f"faqforge {version('faqforge')}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """Documents in; a validated QA dataset and a fine-tuned FAQ model out."""


ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="pipeline YAML", metavar="FILE")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="override a field (repeatable)", metavar="KEY.PATH=VALUE"),
]
SourceOpt = Annotated[
    Path | None, typer.Option(help="corpus folder (overrides `source`)", metavar="DIR")
]
WorkspaceOpt = Annotated[
    Path | None, typer.Option(help="workspace folder (overrides `workspace`)", metavar="DIR")
]


def _resolve(
    config: Path,
    overrides: list[str] | None,
    source: Path | None,
    workspace: Path | None,
    reads_corpus: bool = False,
) -> PipelineConfig:
    """Validate everything before any server starts or anything is written; exit 2 with
    one message listing every problem."""
    try:
        cfg = load_run_config(config, overrides, source, workspace)
        preflight(cfg, reads_corpus)
    except ConfigError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    from faqforge.runtime import prepare_environment

    prepare_environment()
    return cfg


def _run(flow_fn: Any, **params: Any) -> dict[str, Any]:
    """Run a flow, turning its failure into a one-line reason and exit code 1. The run is
    tagged ``faqforge`` and ``cli``: the UI tells local runs from deployments' runs."""
    from prefect import tags

    try:
        with tags("faqforge", "cli"):
            return flow_fn(**params)
    except Exception as exc:
        typer.secho(f"{flow_fn.name} failed: {type(exc).__name__}: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None


def _print_dataset(summary: dict[str, Any]) -> None:
    t = summary["teacher"]
    typer.echo(
        f"dataset {summary['version']}: {summary['train']} train pairs; eval "
        f"{summary['knowledge']} knowledge + {summary['unseen_documents']} unseen-documents "
        f"items; {summary['rejected']} rejected, eval version {summary['eval_version']}\n"
        f"  {summary['dir']}\n"
        f"  teacher {t['model']}: {t['requests']} requests, {t['cache_hits']} cache hits, "
        f"{t['prompt_tokens']} prompt + {t['completion_tokens']} completion tokens"
    )


def _print_run(run: dict[str, Any]) -> None:
    typer.echo(
        f"adapter {run['run_id']} (dataset {run['dataset_version']})\n  {run['adapter_dir']}"
    )


def _print_eval(result: dict[str, Any]) -> None:
    m = result["metrics"]
    rows = "\n".join(
        f"  {name:<16} base {m['base'][name]:.3f}  tuned {m['tuned'][name]:.3f}"
        for name in sorted(m["base"])
        if isinstance(m["base"][name], int | float)
    )
    promoted = "promoted to runs/CHAMPION" if m["promoted"] else "not promoted"
    typer.echo(
        f"{m['headline']}\nevaluation report ({promoted})\n  {result['report']}\n"
        f"knowledge probe ({m['probes']['knowledge']['n']} items):\n{rows}"
    )


@run_app.command("refresh")
def run_refresh(
    config: ConfigOpt = DEFAULT_CONFIG,
    set_: SetOpt = None,
    source: SourceOpt = None,
    workspace: WorkspaceOpt = None,
    new_eval: Annotated[
        bool, typer.Option("--new-eval", help="draw a new eval split instead of the frozen one")
    ] = False,
    force_regenerate: Annotated[
        bool,
        typer.Option(
            "--force-regenerate",
            help="ask the teacher (and judge) again for every chunk, replacing cached replies",
        ),
    ] = False,
) -> None:
    """ingest → chunk → generate → curate → dedup → split → decontaminate → validate → publish."""
    _resolve(config, set_, source, workspace, reads_corpus=True)
    from flows.refresh import refresh

    _print_dataset(
        _run(
            refresh,
            config=str(config),
            overrides=set_ or [],
            source=_str(source),
            workspace=_str(workspace),
            new_eval=new_eval,
            force_regenerate=force_regenerate,
        )
    )


@run_app.command("finetune")
def run_finetune(
    config: ConfigOpt = DEFAULT_CONFIG,
    set_: SetOpt = None,
    dataset: Annotated[str | None, typer.Option(help="dataset version (default LATEST)")] = None,
    source: SourceOpt = None,
    workspace: WorkspaceOpt = None,
    resume: Annotated[
        bool, typer.Option(help="continue a killed run from its last checkpoint")
    ] = False,
) -> None:
    """Train a LoRA/QLoRA adapter on a published dataset version."""
    cfg = _resolve(config, set_, source, workspace)
    if dataset is not None:
        _check_version(cfg, dataset)
    from flows.finetune import finetune_flow

    _print_run(
        _run(
            finetune_flow,
            config=str(config),
            overrides=set_ or [],
            dataset=dataset,
            workspace=_str(workspace),
            resume=resume,
        )
    )


@run_app.command("evaluate")
def run_evaluate(
    config: ConfigOpt = DEFAULT_CONFIG,
    set_: SetOpt = None,
    run: Annotated[str | None, typer.Option(help="run id (default LATEST)")] = None,
    source: SourceOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Compare the base model and a fine-tuned adapter on the eval split."""
    _resolve(config, set_, source, workspace)
    from flows.evaluate import evaluate_flow

    _print_eval(
        _run(
            evaluate_flow,
            config=str(config),
            overrides=set_ or [],
            run=run,
            workspace=_str(workspace),
        )
    )


@run_app.command("all")
def run_all(
    config: ConfigOpt = DEFAULT_CONFIG,
    set_: SetOpt = None,
    source: SourceOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """refresh, then finetune on the version it published, then evaluate."""
    _resolve(config, set_, source, workspace, reads_corpus=True)
    from flows.pipeline import pipeline

    result = _run(
        pipeline,
        config=str(config),
        overrides=set_ or [],
        source=_str(source),
        workspace=_str(workspace),
    )
    _print_dataset(result["dataset"])
    _print_run(result["finetune"])
    _print_eval(result["evaluate"])


@app.command("lineage")
def lineage_cmd(
    ident: Annotated[str, typer.Argument(help="a QA pair id, dataset version or run id")],
    config: ConfigOpt = DEFAULT_CONFIG,
    set_: SetOpt = None,
    workspace: WorkspaceOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of markdown")] = False,
) -> None:
    """Where a QA pair, dataset version or run came from, and which runs used it."""
    from faqforge.lineage_query import LineageNotFound, lineage, render, to_json
    from faqforge.storage import Workspace

    try:  # files only: no Prefect, so no _resolve environment
        cfg = load_run_config(config, set_, None, workspace)
        info = lineage(Workspace(cfg.workspace), ident)
    except (ConfigError, LineageNotFound) as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(to_json(info) if as_json else render(info), nl=False)


def _check_version(cfg: PipelineConfig, dataset: str) -> None:
    """Before any flow run: only a published version has eval probes and lineage."""
    from faqforge.dataset_views import UnknownVersion, version_dir
    from faqforge.storage import Workspace

    try:
        version_dir(Workspace(cfg.workspace), dataset)
    except UnknownVersion as exc:
        hint = (
            "; --dataset takes a version id, not a file: publish your data with "
            "`faqforge run refresh` (it adds the eval probes and lineage), or train on the "
            "version's train.messages.jsonl with TRL directly"
            if Path(dataset).exists()
            else "; `faqforge datasets list` shows them"
        )
        typer.secho(f"--dataset: {exc}{hint}", fg="red", err=True)
        raise typer.Exit(2) from None


def _workspace(config: Path, set_: list[str] | None, workspace: Path | None) -> Any:
    """The workspace of a files-only command (no Prefect); config errors exit 2."""
    from faqforge.storage import Workspace

    try:
        return Workspace(load_run_config(config, set_, None, workspace).workspace)
    except ConfigError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None


def _print_view(render: Any) -> None:
    """Print a files-only view; an unknown version id exits 1 naming what is published."""
    from faqforge.dataset_views import UnknownVersion

    try:
        typer.echo(render(), nl=False)
    except UnknownVersion as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None


@datasets_app.command("list")
def datasets_list(
    config: ConfigOpt = DEFAULT_CONFIG, set_: SetOpt = None, workspace: WorkspaceOpt = None
) -> None:
    """Every published version, oldest first, with its counts; * marks LATEST."""
    from faqforge.dataset_views import list_text

    typer.echo(list_text(_workspace(config, set_, workspace)), nl=False)


@datasets_app.command("show")
def datasets_show(
    version: Annotated[str, typer.Argument(help="a dataset version id (ds-…)")],
    config: ConfigOpt = DEFAULT_CONFIG,
    set_: SetOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """What one version holds: sources, teacher, eval probes, counts per stage."""
    from faqforge.dataset_views import show_text

    _print_view(lambda: show_text(_workspace(config, set_, workspace), version))


@datasets_app.command("diff")
def datasets_diff(
    a: Annotated[str, typer.Argument(help="the older version")],
    b: Annotated[str, typer.Argument(help="the newer version")],
    config: ConfigOpt = DEFAULT_CONFIG,
    set_: SetOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Pairs added, removed and changed from version A to version B."""
    from faqforge.dataset_views import diff_text

    _print_view(lambda: diff_text(_workspace(config, set_, workspace), a, b))


@app.command("export")
def export_cmd(
    version: Annotated[str, typer.Argument(help="a dataset version id (ds-…), or LATEST")],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="messages, alpaca, sharegpt, parquet or hf")
    ] = "messages",
    out: Annotated[
        Path | None,
        typer.Option(help="folder to write (default <workspace>/exports/<version>/<format>)"),
    ] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    set_: SetOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Write a version's train and eval splits in another tool's format."""
    from faqforge.dataset_formats import FORMATS, export
    from faqforge.dataset_views import UnknownVersion, version_dir

    ws = _workspace(config, set_, workspace)
    if fmt not in FORMATS:
        typer.secho(f"--format {fmt!r}: one of {', '.join(FORMATS)}", fg="red", err=True)
        raise typer.Exit(2)
    try:
        name = ws.resolve_dataset(None) if version == "LATEST" else version
        folder = version_dir(ws, name or "LATEST")
        written = export(folder, fmt, out or ws.root / "exports" / folder.name / fmt)
    except (UnknownVersion, FileNotFoundError) as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None
    for path in written:
        typer.echo(str(path))


@datasets_app.command("repair")
def datasets_repair(
    config: ConfigOpt = DEFAULT_CONFIG,
    set_: SetOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Re-point datasets/LATEST to the newest version whose hashes verify and rebuild
    eval/STATE.json from it; prints what changed."""
    from faqforge.integrity import DamagedFile
    from faqforge.storage import Workspace
    from faqforge.workspace_repair import repair_workspace

    try:  # files only: no Prefect
        cfg = load_run_config(config, set_, None, workspace)
        report = repair_workspace(Workspace(cfg.workspace))
    except (ConfigError, DamagedFile) as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None
    for line in report.skipped:
        typer.echo(f"skipped {line}")
    for line in report.actions or ["nothing to repair"]:
        typer.echo(line)
    typer.echo(f"LATEST {report.latest}, eval version {report.state}")


@config_app.command("show")
def config_show(
    config: ConfigOpt = DEFAULT_CONFIG,
    set_: SetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of YAML")] = False,
) -> None:
    """Print the resolved config (file + environment + --set) and its hashes."""
    cfg = _resolve(config, set_, None, None)
    data = cfg.dump()
    data["_hash"] = {"config": cfg.hash(), "dataset": cfg.dataset_hash()}
    typer.echo(json.dumps(data, indent=2) if as_json else yaml.safe_dump(data, sort_keys=False))


@app.command("deploy")
def deploy_cmd(
    prefect_file: Annotated[
        Path, typer.Option(help="the deployments file; its checkout is where runs execute")
    ] = Path("deployments/prefect.yaml"),
) -> None:
    """Create the work pool if missing and register every deployment (PREFECT_API_URL)."""
    from faqforge.runtime import prepare_environment

    prepare_environment()
    from faqforge.deploy import DeployError, deploy

    try:
        created, deployments = deploy(prefect_file)
    except DeployError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None
    for pool in created:
        typer.echo(f"created work pool {pool} (process)")
    for dep in deployments:
        typer.echo(f"registered {dep.describe()}")
    pools = sorted({d.work_pool for d in deployments})
    typer.echo("start a worker: " + " & ".join(f"prefect worker start --pool {p}" for p in pools))


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


if __name__ == "__main__":
    sys.exit(app())
