"""Everything in order: refresh, then finetune on the version it published, then evaluate.

python -m flows.pipeline
faqforge run all
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from faqforge.config import DEFAULT_CONFIG
from faqforge.naming import flow_run_namer
from faqforge.notify import notify_failure
from flows.evaluate import evaluate_flow
from flows.finetune import finetune_flow
from flows.refresh import refresh


@flow(name="pipeline", flow_run_name=flow_run_namer("pipeline"), on_failure=[notify_failure])
def pipeline(
    config: str = str(DEFAULT_CONFIG),
    overrides: list[str] | None = None,
    source: str | None = None,
    workspace: str | None = None,
) -> dict[str, Any]:
    """Refresh the dataset, fine-tune on the version it published, then evaluate.

    Args:
        config: Pipeline YAML file (relative to the checkout), e.g. configs/default.yaml.
        overrides: Config fields to override, each "key.path=value", e.g.
            "teacher.concurrency=4".
        source: Corpus folder; empty keeps the config's `source`.
        workspace: Workspace folder; empty keeps the config's `workspace`.
    """
    dataset = refresh(config, overrides, source, workspace)
    run = finetune_flow(config, overrides, dataset["version"], workspace)
    report = evaluate_flow(config, overrides, run["run_id"], workspace)
    return {"dataset": dataset, "finetune": run, "evaluate": report}


if __name__ == "__main__":
    pipeline()
