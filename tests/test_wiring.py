"""Everything that is wired by name loads: flows, deployment entry points, expectation suites."""

from __future__ import annotations

import importlib
import inspect
import json
import re
from pathlib import Path

import pytest
import yaml

from faqforge.events import MADE, RUN_PARAMETERS

ROOT = Path(__file__).resolve().parent.parent
FLOW_MODULES = sorted(p.stem for p in (ROOT / "flows").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("name", FLOW_MODULES)
def test_every_flow_module_imports_and_defines_a_flow(name):
    from prefect import Flow

    module = importlib.import_module(f"flows.{name}")
    flows = [
        v for v in vars(module).values() if isinstance(v, Flow) and v.__module__ == module.__name__
    ]
    assert flows, f"flows/{name}.py defines no flow"
    for flow in flows:
        params = inspect.signature(flow.fn).parameters
        assert "config" in params and "overrides" in params and "workspace" in params


def test_every_expectation_suite_loads():
    import great_expectations as gx

    suites = sorted((ROOT / "expectations").glob("*.json"))
    assert suites
    for path in suites:
        data = json.loads(path.read_text())
        data.pop("id", None)
        suite = gx.ExpectationSuite(**data)
        assert suite.expectations, f"{path.name} has no expectations"


PREFECT_YAML = ROOT / "deployments" / "prefect.yaml"
TEMPLATE = re.compile(r"^\{\{\s*event\.payload\.(\w+)\s*\}\}$")


def deployments() -> list[dict]:
    """The deployments with every anchor and merge key resolved (an unknown alias raises)."""
    return yaml.safe_load(PREFECT_YAML.read_text())["deployments"]


def flow_of(dep: dict):
    path, func = dep["entrypoint"].split(":")
    assert (ROOT / path).is_file(), f"{dep['name']}: no file {path}"
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, func)


DEPLOYMENTS = {f"{flow_of(d).name}/{d['name']}": d for d in deployments()}


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_deployment_entrypoint_is_a_flow_with_typed_parameters(name):
    from prefect import Flow

    from faqforge.notify import notify_failure

    dep = DEPLOYMENTS[name]
    flow = flow_of(dep)
    assert isinstance(flow, Flow), f"{dep['entrypoint']} is not a flow"
    params = dep["parameters"]
    unknown = set(params) - set(inspect.signature(flow.fn).parameters)
    assert not unknown, f"{name}: parameters {unknown} not in {flow.fn.__name__}"
    # Casts every value to its annotation as Prefect does for a run: a wrong type raises.
    assert flow.validate_parameters(params) == params
    assert {"config", "overrides", "workspace"} <= params.keys()  # the UI form's core
    assert dep["tags"] and "faqforge" in dep["tags"]
    assert dep["work_pool"]["name"] == "faqforge"
    # Deployment runs get a readable name and report failures like local runs.
    assert flow.flow_run_name is not None and notify_failure in flow.on_failure_hooks


def test_schedules_carry_a_timezone():
    from zoneinfo import ZoneInfo

    schedules = [s for d in deployments() for s in d.get("schedules", [])]
    assert schedules
    for schedule in schedules:
        assert schedule["cron"] and ZoneInfo(schedule["timezone"])
    assert DEPLOYMENTS["refresh/nightly"]["schedules"]


@pytest.mark.parametrize("name", sorted(n for n, d in DEPLOYMENTS.items() if d.get("triggers")))
def test_triggers_follow_an_existing_deployment_and_pass_valid_parameters(name):
    from prefect.events import DeploymentTriggerTypes
    from pydantic import TypeAdapter

    dep = DEPLOYMENTS[name]
    for spec in dep["triggers"]:
        trigger = TypeAdapter(DeploymentTriggerTypes).validate_python(spec)  # Prefect's schema
        [event] = trigger.expect
        assert event in MADE, f"{name}: {event} is not an event faqforge emits"
        related = {
            r["prefect.resource.role"]: r["prefect.resource.name"] for r in spec["match_related"]
        }
        upstream = f"{related['flow']}/{related['deployment']}"
        assert upstream in DEPLOYMENTS and upstream != name, f"{name}: follows {upstream}?"
        # The payload carries the upstream run's own parameters and the id of what it made.
        upstream_params = inspect.signature(flow_of(DEPLOYMENTS[upstream]).fn).parameters
        assert set(RUN_PARAMETERS) <= set(upstream_params)
        fixed = {}
        for key, value in spec["parameters"].items():
            if isinstance(value, str) and (m := TEMPLATE.match(value)):
                assert m[1] in {*RUN_PARAMETERS, MADE[event]}, f"{name}: {value} not in payload"
            else:
                fixed[key] = value
        assert set(spec["parameters"]) <= set(inspect.signature(flow_of(dep).fn).parameters)
        flow_of(dep).validate_parameters(fixed)
