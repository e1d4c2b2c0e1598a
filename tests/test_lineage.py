"""Lineage on a workspace made by the real flows (refresh → finetune → evaluate, tiny settings,
mirrored to a file:// remote): Prefect asset materializations with their upstream assets and a
``lineage`` artifact per flow run, read back from the API; ``faqforge lineage`` from a training
pair, a dataset version and a run id, as markdown and JSON; a clear error for an unknown id."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from faqforge.cli import app
from faqforge.events import ADAPTER_TRAINED, DATASET_PUBLISHED, MADE
from faqforge.storage import Workspace, iter_jsonl, read_json, read_run_manifest
from testsupport.prefect_reads import run_artifacts

# Every test here reads the workspace of one real refresh → finetune → evaluate chain.
pytestmark = pytest.mark.slow


def materializations(
    keys: list[str], timeout: float = 30.0, name: str = "prefect.asset.materialization.succeeded"
) -> dict[str, object]:
    """The latest event ``name`` (a materialization) of each resource (asset key), waiting
    for the server to store them (events are persisted asynchronously)."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            page = client.read_events(
                EventFilter(
                    event=EventNameFilter(name=[name]),
                    resource=EventResourceFilter(id=keys),
                ),
                limit=50,
            )
        found = {}
        for event in page.events:  # newest first
            found.setdefault(event.resource.id, event)
        if set(found) == set(keys) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def related_ids(event) -> set[str]:
    return {r.id for r in event.related if r.role == "asset"}


def test_flows_materialize_the_chain_documents_dataset_adapter_report(chain):
    ws, version, rid = chain["ws"], chain["dataset"]["version"], chain["run"]["run_id"]
    # Keys name where each product lives durably: the remote, so every worker names it alike.
    remote, corpus = chain["remote"], f"file://{chain['corpus']}"
    dataset = f"{remote}/datasets/{version}"
    adapter = f"{remote}/runs/{rid}/adapter"
    report = f"{remote}/runs/{rid}/eval/report.md"
    events = materializations([dataset, adapter, report])
    assert set(events) == {dataset, adapter, report}
    assert related_ids(events[dataset]) == {corpus}
    base = read_run_manifest(Workspace(ws), ws / "runs" / rid).base_model
    assert related_ids(events[adapter]) == {dataset, f"file://{base}"}
    assert related_ids(events[report]) == {adapter, dataset}
    # Each materialization carries what the step made.
    assert events[dataset].payload["counts"]["train"] == chain["dataset"]["train"]
    assert events[dataset].payload["documents"] == 3
    assert events[adapter].payload["dataset_version"] == version
    assert events[adapter].payload["steps"] == 2
    assert events[report].payload["n"] == 6  # 3 knowledge + 3 unseen-documents items
    assert set(events[report].payload["tuned"]) >= {"rouge_l", "exact_match"}


def test_refresh_and_finetune_announce_what_they_made_for_the_chained_deployments(chain):
    made = {
        DATASET_PUBLISHED: ("refresh", chain["dataset"]["version"]),
        ADAPTER_TRAINED: ("finetune", chain["run"]["run_id"]),
    }
    for name, (flow, ident) in made.items():
        resource = f"faqforge.{name.split('.')[1]}.{ident}"
        [event] = materializations([resource], name=name).values()
        # What deployments/prefect.yaml's triggers read: the id and the run's own parameters.
        assert event.payload[MADE[name]] == ident
        assert event.payload["workspace"] == str(chain["ws"])
        assert event.payload["overrides"] == chain["common"]["overrides"]
        assert {r.name for r in event.related if r.role == "flow"} == {flow}
        run_ids = {r.id for r in event.related if r.role == "flow-run"}
        assert run_ids == {f"prefect.flow-run.{chain['flow_runs'][flow]}"}


def test_each_flow_run_has_a_lineage_artifact(chain):
    version, rid = chain["dataset"]["version"], chain["run"]["run_id"]
    expected = {
        "refresh": [f"# Dataset {version}", "overview.md", "content hash"],
        "finetune": [f"# Run {rid}", f"dataset `{version}`", "2 steps"],
        "evaluate": [f"# Run {rid}", "eval on 6 items", "rouge_l"],
    }
    for flow, shown in expected.items():
        (artifact,) = run_artifacts(chain["flow_runs"][flow], "lineage", chain["ws"])
        for text in shown:
            assert text in artifact.data, (flow, text)


def lineage_cli(chain, *args: str):
    return CliRunner().invoke(app, ["lineage", *args, "--workspace", str(chain["ws"])])


def test_lineage_of_a_training_pair_back_to_its_chunk_and_forward_to_runs(chain):
    ws, version, rid = chain["ws"], chain["dataset"]["version"], chain["run"]["run_id"]
    pair = next(iter_jsonl(ws / "datasets" / version / "train.jsonl"))
    out = lineage_cli(chain, pair["id"], "--json")
    assert out.exit_code == 0, out.output
    info = json.loads(out.stdout)
    assert info["kind"] == "pair" and info["id"] == pair["id"]
    assert info["pair"]["question"] == pair["question"]
    assert info["pair"]["prompt_version"] == pair["prompt_version"]
    assert info["pair"]["teacher"] == pair["teacher"]
    doc = info["document"]
    assert doc["path"] == str(chain["corpus"] / pair["source"])
    manifest = read_json(ws / "datasets" / version / "manifest.json")
    (listed,) = [d for d in manifest["documents"] if d["doc_id"] == pair["doc_id"]]
    assert doc["content_hash"] == listed["content_hash"]
    # The chunk, from the chunk stage's output: its heading path, and text the answer came from.
    chunk = info["chunk"]
    assert chunk["chunk_id"] == pair["chunk_id"]
    assert chunk["heading_path"] == pair["heading_path"]
    assert chunk["excerpt"] and "missing" not in chunk
    assert info["datasets"] == [{"version": version, "split": "train"}]
    (run,) = info["runs"]
    assert run["run_id"] == rid and run["dataset_version"] == version
    ev = run["evaluation"]
    assert ev["report"] == str(ws / "runs" / rid / "eval" / "report.md")
    assert ev["promoted"] == read_json(ws / "runs" / rid / "eval" / "metrics.json")["promoted"]

    text = lineage_cli(chain, pair["id"]).output
    for shown in (pair["question"], str(doc["path"]), pair["chunk_id"], version, rid):
        assert shown in text, shown


def test_lineage_of_a_dataset_version_and_of_a_run(chain):
    ws, version, rid = chain["ws"], chain["dataset"]["version"], chain["run"]["run_id"]
    info = json.loads(lineage_cli(chain, version, "--json").stdout)
    assert info["kind"] == "dataset"
    assert sorted(d["source"] for d in info["documents"]) == [
        "finetuning.md",
        "operations.md",
        "overview.md",
    ]
    assert info["counts"] == {
        "train": chain["dataset"]["train"],
        "eval": chain["dataset"]["eval"],
        "rejections": chain["dataset"]["rejected"],
    }
    assert [r["run_id"] for r in info["runs"]] == [rid]

    info = json.loads(lineage_cli(chain, rid, "--json").stdout)
    assert info["kind"] == "run" and info["dataset_version"] == version
    assert info["base_model"] == read_run_manifest(Workspace(ws), ws / "runs" / rid).base_model
    assert info["dataset"]["version"] == version and info["dataset"]["documents"] == 3
    assert info["evaluation"]["n"] == 6
    text = lineage_cli(chain, rid).output
    assert f"# Run {rid}" in text and "report.md" in text


def test_unknown_id_names_what_was_searched(chain):
    out = lineage_cli(chain, "no-such-id")
    assert out.exit_code == 1
    ws = chain["ws"]
    for searched in (str(ws / "datasets"), str(ws / "runs"), "train/eval/rejections", "1 dataset"):
        assert searched in out.output, searched
