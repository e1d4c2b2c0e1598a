"""The local operator path, really run: a Prefect server, `faqforge deploy`, the nightly
schedule, a process worker, `prefect deployment run 'refresh/nightly'`, and the automation
that starts finetune after it, all on 127.0.0.1 with a tiny corpus and workspace."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from faqforge.events import ADAPTER_TRAINED
from faqforge.storage import read_json
from testsupport.prefect_server import PrefectAPI, prefect_server, prefect_worker

ROOT = Path(__file__).resolve().parent.parent
CORPUS_FILES = ("overview.md", "glossary.txt", "configuration.md")
# No MiniLM load; the finetune override rides along to the run the automation starts.
FAST = ["dedup.semantic=false", "finetune.max_steps=4"]


def flow_runs(api: PrefectAPI, flow: str) -> list:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with SyncPrefectClient(api.url) as client:
        return client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow])))


def wait_for(probe, timeout_s: float, log: Path):
    """``probe()`` once it is truthy; fails after ``timeout_s``, quoting the worker log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := probe():
            return found
        time.sleep(1)
    raise AssertionError(f"nothing after {timeout_s} s\n{tail(log)}")


def scheduled_runs(api: PrefectAPI) -> list:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState
    from prefect.client.schemas.filters import FlowRunFilterStateType as StateType
    from prefect.client.schemas.objects import StateType as T

    scheduled = FlowRunFilterState(type=StateType(any_=[T.SCHEDULED]))
    with SyncPrefectClient(api.url) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(state=scheduled))


def automation(api: PrefectAPI, name: str):
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(api.url) as client:
        [found] = client.read_automations_by_name(name)
    return found


def deployment_id(api: PrefectAPI, name: str):
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(api.url) as client:
        return client.read_deployment_by_name(name).id


def wait_for_run(api: PrefectAPI, run_id: str, timeout_s: float, log: Path):
    """Flow run ``run_id`` once it is final; fails on timeout or a non-COMPLETED end."""
    from prefect.client.orchestration import SyncPrefectClient

    def final():
        with SyncPrefectClient(api.url) as client:
            run = client.read_flow_run(run_id)
        return run if run.state and run.state.is_final() else None

    run = wait_for(final, timeout_s, log)
    assert run.state.is_completed(), f"{run.name}: {run.state.message}\n{tail(log)}"
    return run


def tail(path: Path) -> str:
    return path.read_text(errors="replace")[-4000:] if path.is_file() else ""


@pytest.mark.slow
def test_nightly_refresh_on_a_worker_publishes_and_triggers_finetune(tmp_path):
    corpus, ws = tmp_path / "corpus", tmp_path / "ws"
    corpus.mkdir()
    for name in CORPUS_FILES:
        shutil.copy(ROOT / "faqforge" / "sample_corpus" / name, corpus / name)

    with prefect_server(tmp_path / "prefect") as api:
        deployed = subprocess.run(
            [sys.executable, "-m", "faqforge.cli", "deploy"],
            cwd=ROOT, env=api.env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        out = deployed.stdout
        assert "created work pool faqforge (process)" in out
        assert "registered refresh/nightly (pool faqforge): cron '0 2 * * *' Europe/London" in out
        after = "after: finetune after refresh/nightly"
        assert f"finetune/train-adapter (pool faqforge): {after}" in out
        assert "evaluate/score-adapter (pool faqforge): after: evaluate after finetune" in out
        # The server's scheduler turns the cron into runs at 02:00 London time.
        nightly = wait_for(lambda: scheduled_runs(api), 60, api.home / "server.log")
        for run in nightly:
            local = run.expected_start_time.astimezone(ZoneInfo("Europe/London"))
            assert (local.hour, local.minute) == (2, 0) and "nightly" in run.tags

        worker_log = api.home / "worker-faqforge.log"
        with prefect_worker(api, "faqforge", cwd=ROOT):
            params = {"source": str(corpus), "workspace": str(ws), "overrides": FAST}
            started = subprocess.run(
                [sys.executable, "-m", "prefect", "deployment", "run", "refresh/nightly",
                 "--params", json.dumps(params)],
                cwd=ROOT, env=api.env(), capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert started.returncode == 0, started.stdout + started.stderr
            [run_id] = re.findall(r"UUID: ([0-9a-f-]{36})", started.stdout)

            refresh = wait_for_run(api, run_id, 150, worker_log)
            assert re.fullmatch(r"refresh-\d{4}-\d\d-\d\d-\d{6}-default-corpus", refresh.name)
            assert {"faqforge", "nightly"} <= set(refresh.tags)
            version = (ws / "datasets" / "LATEST").read_text().strip()
            assert read_json(ws / "datasets" / version / "manifest.json")["version"] == version

            # The automation: a finetune run of finetune/train-adapter on the version this refresh
            # published and on its own parameters (the event's payload, templated in
            # prefect.yaml). Training it is out of this test's budget (the whole chain
            # measured ≈ 4 min here): it is stopped when the worker is.
            finetune = wait_for(lambda: flow_runs(api, "finetune"), 60, worker_log)[0]
            assert finetune.parameters["dataset"] == version
            assert finetune.parameters["workspace"] == str(ws)
            assert finetune.parameters["overrides"] == FAST
            assert finetune.parameters["config"] == "configs/default.yaml"
            assert {"faqforge", "training"} <= set(finetune.tags)
        evaluate_after = automation(api, "evaluate after finetune/train-adapter")
        # Distinct names and a sentence each: the automations list reads what each one does.
        assert evaluate_after.description.startswith("Score each adapter")
        assert evaluate_after.trigger.expect == {ADAPTER_TRAINED}
        related = [r["prefect.resource.name"] for r in evaluate_after.trigger.match_related]
        assert related == [["finetune"], ["train-adapter"]]
        [action] = evaluate_after.actions
        assert action.deployment_id == deployment_id(api, "evaluate/score-adapter")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("deployments: [", "expected"),  # broken YAML: the parser's own words
        ("name: faqforge\n", "no `deployments:` list"),
    ],
)
def test_deploy_names_the_file_and_reason_for_a_bad_prefect_file(tmp_path, text, reason):
    from typer.testing import CliRunner

    from faqforge.cli import app

    bad = tmp_path / "prefect.yaml"
    bad.write_text(text)
    result = CliRunner().invoke(app, ["deploy", "--prefect-file", str(bad)])
    assert result.exit_code == 1
    assert str(bad) in result.output and reason in result.output
