"""Register faqforge's Prefect deployments (``deployments/prefect.yaml``) with the API in
``PREFECT_API_URL``: the work pools they name are created (type ``process``) when missing,
then ``prefect deploy --all`` registers deployments, schedules and automation triggers.

    faqforge deploy                      # then: prefect worker start --pool faqforge

The deployments' ``pull`` step moves each run into ``$FAQFORGE_HOME``; unset, it is the
checkout that holds the prefect file. Not handled: removing deployments dropped from the
file (``prefect deployment delete``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PREFECT_FILE = Path("deployments/prefect.yaml")


class DeployError(RuntimeError):
    """The prefect file is unusable or `prefect deploy` failed; the message says why."""


@dataclass
class Registered:
    """One deployment as the API now has it."""

    name: str  # flow/deployment, what `prefect deployment run` takes
    work_pool: str
    schedules: list[str]
    triggers: list[str]  # names of the automations that run it
    parameters: dict[str, Any]

    def describe(self) -> str:
        when = "; ".join(self.schedules + [f"after: {t}" for t in self.triggers]) or "on demand"
        return f"{self.name} (pool {self.work_pool}): {when}"


def read_spec(prefect_file: Path) -> dict[str, Any]:
    """The prefect file, anchors resolved; raises DeployError naming the file and reason."""
    try:
        spec = yaml.safe_load(prefect_file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DeployError(f"{prefect_file}: {exc}") from exc
    if not isinstance(spec, dict) or not spec.get("deployments"):
        raise DeployError(f"{prefect_file}: no `deployments:` list")
    return spec


def pool_names(spec: dict[str, Any]) -> list[str]:
    return sorted({d["work_pool"]["name"] for d in spec["deployments"]})


def ensure_process_pool(name: str) -> bool:
    """Create process work pool ``name`` unless it exists; True when it was created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            return False
        except ObjectNotFound:
            template = ProcessWorker.get_default_base_job_template()
            client.create_work_pool(
                WorkPoolCreate(name=name, type="process", base_job_template=template)
            )
            return True


def run_prefect_deploy(prefect_file: Path, home: Path) -> None:
    """``prefect --no-prompt deploy --all`` from the checkout (entrypoints are relative)."""
    env = {**os.environ, "FAQFORGE_HOME": os.environ.get("FAQFORGE_HOME", str(home))}
    cmd = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"]
    done = subprocess.run(
        [*cmd, "--prefect-file", str(prefect_file)],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise DeployError(f"prefect deploy failed (exit {done.returncode}):\n{tail}")


def registered(pools: list[str]) -> list[Registered]:
    """The deployments on the API in ``pools``, with schedules and triggering automations."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterName

    found = []
    with get_client(sync_client=True) as client:
        pool_filter = WorkPoolFilter(name=WorkPoolFilterName(any_=pools))
        for dep in client.read_deployments(work_pool_filter=pool_filter):
            flow = client.read_flow(dep.flow_id)
            automations = client.read_resource_related_automations(f"prefect.deployment.{dep.id}")
            found.append(
                Registered(
                    name=f"{flow.name}/{dep.name}",
                    work_pool=dep.work_pool_name or "",
                    schedules=[describe_schedule(s.schedule) for s in dep.schedules],
                    triggers=sorted(a.name for a in automations),
                    parameters=dict(dep.parameters),
                )
            )
    return sorted(found, key=lambda r: r.name)


def describe_schedule(schedule: Any) -> str:
    cron = getattr(schedule, "cron", None)
    what = f"cron {cron!r}" if cron else type(schedule).__name__
    return f"{what} {getattr(schedule, 'timezone', None) or 'UTC'}"


def deploy(prefect_file: Path = PREFECT_FILE) -> tuple[list[str], list[Registered]]:
    """Create missing work pools, register every deployment; returns (pools created,
    deployments registered). The checkout is the prefect file's grandparent folder."""
    prefect_file = prefect_file.resolve()
    spec = read_spec(prefect_file)
    pools = pool_names(spec)
    created = [p for p in pools if ensure_process_pool(p)]
    run_prefect_deploy(prefect_file, prefect_file.parent.parent)
    return created, registered(pools)
