"""The training flow: a LoRA (QLoRA on CUDA) adapter trained on a published dataset version.

python -m flows.finetune
faqforge run finetune --dataset ds-0123abcd4567
faqforge run finetune --resume    # continue a killed run from its last checkpoint
"""

from __future__ import annotations

from prefect import flow

from faqforge.config import DEFAULT_CONFIG, load_run_config
from faqforge.events import ADAPTER_TRAINED, announce
from faqforge.integrity import DamagedFile
from faqforge.lineage import record_adapter
from faqforge.naming import flow_run_namer
from faqforge.notify import notify_failure
from faqforge.remote import fetch_dataset, mirror_run
from faqforge.runtime import prepare_environment
from faqforge.storage import Workspace
from tasks.finetune import Trained, finetune
from tasks.publish import version_damage


class DatasetNotFound(FileNotFoundError):
    """No published dataset version to train on."""


def dataset_dir(ws: Workspace, version: str | None) -> str:
    """The folder of ``version`` (``fetch_dataset`` resolved it: given, else LATEST)."""
    if version is None:
        raise DatasetNotFound(
            f"no dataset published in {ws.datasets}: run `faqforge run refresh` first"
        )
    path = ws.datasets / version
    if not (path / "manifest.json").is_file():
        raise DatasetNotFound(f"dataset version {version!r} not found in {ws.datasets}")
    if (problem := version_damage(path)) is not None:  # never train on what was not published
        raise DamagedFile(path, problem, "re-run `faqforge run refresh` (it rewrites the "
                          f"version's files) or {ws.pointer_fix(ws.DATASETS_LATEST)}")  # fmt: skip
    return str(path)


@flow(name="finetune", flow_run_name=flow_run_namer("finetune"), on_failure=[notify_failure])
def finetune_flow(
    config: str = str(DEFAULT_CONFIG),
    overrides: list[str] | None = None,
    dataset: str | None = None,
    workspace: str | None = None,
    resume: bool = False,
) -> Trained:
    """Train a LoRA/QLoRA adapter on a published dataset version; returns the run.

    Args:
        config: Pipeline YAML file (relative to the checkout), e.g. configs/default.yaml.
        overrides: Config fields to override, each "key.path=value", e.g.
            "teacher.concurrency=4".
        dataset: Dataset version id (ds-…) to train on; empty trains on datasets/LATEST.
        workspace: Workspace folder; empty keeps the config's `workspace`.
        resume: Continue a killed run from its last checkpoint instead of starting afresh.
    """
    prepare_environment()
    cfg = load_run_config(config, overrides, workspace=workspace)
    ws = Workspace(cfg.workspace)
    version = fetch_dataset(dataset, cfg.storage, str(cfg.workspace))
    summary = finetune(dataset_dir(ws, version), cfg.finetune, str(cfg.workspace), resume=resume,
                       env_overrides=cfg.env_overrides)  # fmt: skip
    mirror_run(summary["run_id"], cfg.storage, str(cfg.workspace))
    record_adapter(summary, cfg)
    run = {"config": config, "overrides": overrides or [], "workspace": str(cfg.workspace)}
    announce(ADAPTER_TRAINED, summary["run_id"], run)
    return summary


if __name__ == "__main__":
    finetune_flow()
