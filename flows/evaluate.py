"""The evaluation flow: base vs fine-tuned on the eval split of the adapter's dataset.

python -m flows.evaluate
faqforge run evaluate --run ft-0123abcd4567
"""

from __future__ import annotations

from prefect import flow

from faqforge.config import DEFAULT_CONFIG, load_run_config
from faqforge.lineage import record_report
from faqforge.locking import workspace_lock
from faqforge.naming import flow_run_namer
from faqforge.notify import notify_failure
from faqforge.remote import fetch_run, mirror_report
from faqforge.runtime import prepare_environment
from faqforge.storage import Workspace
from tasks.evaluate.stage import Evaluated, evaluate


class RunNotFound(FileNotFoundError):
    """No finished fine-tuning run to evaluate."""


def run_dir(ws: Workspace, run: str | None) -> str:
    """The folder of training run ``run`` (``fetch_run`` resolved it: given, else LATEST)."""
    if run is None:
        raise RunNotFound(f"no fine-tuning run in {ws.runs}: run `faqforge run finetune` first")
    path = ws.runs / run
    if not (path / "manifest.json").is_file():
        raise RunNotFound(f"run {run!r} not found in {ws.runs}")
    return str(path)


@flow(name="evaluate", flow_run_name=flow_run_namer("evaluate"), on_failure=[notify_failure])
def evaluate_flow(
    config: str = str(DEFAULT_CONFIG),
    overrides: list[str] | None = None,
    run: str | None = None,
    workspace: str | None = None,
) -> Evaluated:
    """Score a fine-tuning run against its base model; returns report + metrics.

    The teacher section names the judge's endpoint (none for the extractive teacher).

    Args:
        config: Pipeline YAML file (relative to the checkout), e.g. configs/default.yaml.
        overrides: Config fields to override, each "key.path=value", e.g.
            "teacher.concurrency=4".
        run: Run id (run-…) to evaluate; empty evaluates runs/LATEST.
        workspace: Workspace folder; empty keeps the config's `workspace`.
    """
    prepare_environment()
    cfg = load_run_config(config, overrides, workspace=workspace)
    # An evaluation reads runs/CHAMPION first and may replace it last: one at a time, or the
    # slower of two would overwrite a promotion it never compared against.
    with workspace_lock(cfg.workspace, "evaluate", cfg.lock_timeout_s):
        run = fetch_run(run, cfg.storage, str(cfg.workspace))
        result = evaluate(
            run_dir(Workspace(cfg.workspace), run), cfg.evaluate, str(cfg.workspace), cfg.teacher
        )
        run_id = result["metrics"]["lineage"]["run_id"]
        mirror_report(run_id, cfg.storage, str(cfg.workspace))
        record_report(run_id, cfg)
        return result


if __name__ == "__main__":
    evaluate_flow()
