"""Events that chain the deployments: "this dataset version was published", "this adapter
was trained", each naming exactly what was made.

The automations in ``deployments/prefect.yaml`` start finetune and evaluate from these
events, taking the version or run id from the payload. Chaining on "the refresh run
completed" and reading ``LATEST`` would train on whatever was published last, which, with
a rerun from the UI in between, need not be what the nightly run made. Inside a flow run
Prefect relates the event to that run, its flow and its deployment, so an automation can
follow one deployment only.
"""

from __future__ import annotations

from typing import Any

DATASET_PUBLISHED = "faqforge.dataset.published"
ADAPTER_TRAINED = "faqforge.adapter.trained"
# Each event → the payload field naming what was made (beside the run's own parameters).
MADE = {DATASET_PUBLISHED: "version", ADAPTER_TRAINED: "run_id"}
RUN_PARAMETERS = ("config", "overrides", "workspace")


def announce(event: str, ident: str, params: dict[str, Any]) -> None:
    """Emit ``event`` about ``ident`` with the run's own ``config``/``overrides``/``workspace``
    (``params``) in the payload, for the next flow to run on; nothing outside a flow run."""
    from prefect.events import emit_event

    from faqforge.tasking import in_prefect_run

    if not in_prefect_run():
        return
    kind = event.split(".")[1]
    emit_event(
        event=event,
        resource={
            "prefect.resource.id": f"faqforge.{kind}.{ident}",
            "prefect.resource.name": ident,
        },
        payload={**{k: params[k] for k in RUN_PARAMETERS}, MADE[event]: ident},
    )
