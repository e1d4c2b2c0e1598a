"""The deployment run form describes every parameter: Prefect reads the descriptions from
the flows' Google-style docstrings into each parameter schema."""

from __future__ import annotations

import inspect

import pytest
from prefect.utilities.callables import parameter_schema

from flows.evaluate import evaluate_flow
from flows.finetune import finetune_flow
from flows.pipeline import pipeline
from flows.refresh import refresh


@pytest.mark.parametrize("flow", [refresh, finetune_flow, evaluate_flow, pipeline])
def test_every_flow_parameter_has_a_description(flow):
    schema = parameter_schema(flow).model_dump()["properties"]
    assert list(schema) == list(inspect.signature(flow.fn).parameters)
    missing = [name for name, field in schema.items() if not field.get("description")]
    assert missing == [], f"{flow.name}: no description for {missing}"
    assert "key.path=value" in schema["overrides"]["description"]
