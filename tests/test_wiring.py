"""Everything that is wired by name loads: flows, deployment entry points, expectation suites."""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path

import pytest
import yaml

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


def test_every_deployment_entrypoint_and_parameter_matches_its_flow():
    spec = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    assert spec["deployments"]
    for dep in spec["deployments"]:
        path, func = dep["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, func)
        signature = inspect.signature(flow.fn).parameters
        unknown = set(dep.get("parameters", {})) - set(signature)
        assert not unknown, f"{dep['name']}: parameters {unknown} not in {func}{list(signature)}"
