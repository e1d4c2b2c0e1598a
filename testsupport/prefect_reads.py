"""Reading back what a flow run left in the Prefect API."""

from __future__ import annotations

from pathlib import Path

from faqforge.artifacts import artifact_key
from faqforge.storage import Workspace


def run_artifacts(flow_run_id, name: str, ws: Path) -> list:
    """The run's artifacts named ``name`` (keys carry the workspace: ``artifact_key``)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[artifact_key(name, Workspace(ws))]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            )
        )
