"""Run Great Expectations suites stored as plain JSON on pandas frames, offline.

Each run uses a throwaway in-memory context (nothing written, no network). With a ``docs_dir``
it also builds Data Docs HTML there (the pages pull CSS/JS from CDNs; they render without
styling offline). Suite kwargs may hold ``{"$PARAMETER": name}`` placeholders, filled from
``parameters`` (a None value drops the bound). ``import great_expectations`` costs 4–6 s, so
it happens here, lazily.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SAMPLE_SIZE = 5


@dataclass(frozen=True)
class SuiteRun:
    """One suite on one frame."""

    suite: Path
    frame: Any  # pandas.DataFrame


def load_suite(path: Path):
    """An ``ExpectationSuite`` from its JSON file (the stored ``id`` is dropped)."""
    import great_expectations as gx

    data = json.loads(Path(path).read_text())
    data.pop("id", None)
    return gx.ExpectationSuite(**data)


def _context(docs_dir: Path | None):
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        ),
    )
    if docs_dir is not None:
        context.add_data_docs_site(
            "faqforge",
            {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    return context


def failure(result: dict[str, Any], suite: str) -> dict[str, Any]:
    """One failed expectation: what, on which column, how often, samples and row indices."""
    config, outcome = result["expectation_config"], result.get("result", {})
    # Column-map expectations list unexpected values; table-level ones an observed value.
    samples = outcome.get("partial_unexpected_list", [outcome.get("observed_value")])
    return {
        "suite": suite,
        "expectation": config["type"],
        "column": config["kwargs"].get("column"),
        "unexpected_count": outcome.get("unexpected_count"),
        "sample_values": samples[:SAMPLE_SIZE],
        "rows": outcome.get("unexpected_index_list", []),
    }


def run_suites(
    runs: list[SuiteRun], parameters: dict[str, Any], docs_dir: Path | None = None
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Run each suite on its frame: ``(statistics summed over suites, failures)``."""
    import great_expectations as gx

    context = _context(docs_dir)
    source = context.data_sources.add_pandas("faqforge")
    statistics = {"evaluated_expectations": 0, "successful_expectations": 0}
    failures: list[dict[str, Any]] = []
    for run in runs:
        suite = context.suites.add(load_suite(run.suite))
        batch = source.add_dataframe_asset(suite.name).add_batch_definition_whole_dataframe("all")
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=suite.name, data=batch, suite=suite)
        )
        actions = [gx.checkpoint.UpdateDataDocsAction(name="docs")] if docs_dir else []
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=suite.name,
                validation_definitions=[definition],
                actions=actions,  # type: ignore[arg-type]  # list is invariant; GX takes subclasses
                result_format={"result_format": "COMPLETE"},
            )
        )
        outcome = checkpoint.run(
            batch_parameters={"dataframe": run.frame}, expectation_parameters=parameters
        )
        (result,) = [r.to_json_dict() for r in outcome.run_results.values()]
        for key in statistics:
            statistics[key] += result["statistics"][key]
        failures += [failure(r, suite.name) for r in result["results"] if not r["success"]]
    return statistics, failures
