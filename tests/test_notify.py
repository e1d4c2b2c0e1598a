"""Failure notifications: a failed flow run reaches a real loopback webhook with its reason
and a link to the run, by URL or through a saved Prefect webhook block; a broken webhook
never hides the run's own failure."""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from faqforge.config import load_config
from faqforge.notify import failure_message, redact, run_url, secrets_in
from testsupport.loopback import LoopbackServer

ROOT = Path(__file__).resolve().parent.parent
UI = "http://ui.example:4200"


class Webhook(LoopbackServer):
    """Records each POSTed JSON body; answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        super().__init__()

    @property
    def url(self) -> str:
        return self.base_url.removesuffix("/v1") + "/hook"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with hook._lock:
                    hook.requests.append({"path": self.path, "body": json.loads(body)})
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def failing_run(prefect_harness, monkeypatch, tmp_path):
    """Run a flow on a corpus folder that does not exist; returns its final (failed) state."""
    monkeypatch.chdir(ROOT)

    def run(flow, *overrides: str):
        params = {"source": str(tmp_path / "no-such-corpus")}
        state = flow(
            config="configs/tiny-llama_lora_cpu.yaml",
            overrides=list(overrides),
            workspace=str(tmp_path / "ws"),
            return_state=True,
            **params,
        )
        assert state.is_failed()
        return state

    return run


@pytest.fixture
def flow_run_log():
    """Records what the flow-run loggers (the hook's logger) emit."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("prefect.flow_runs")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def read_run(run_id):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def test_failed_refresh_posts_its_name_reason_and_link(failing_run):
    from flows.refresh import refresh

    with Webhook() as hook:
        state = failing_run(refresh, f"notify.webhook_url={hook.url}", f"notify.ui_url={UI}")
    run = read_run(state.state_details.flow_run_id)
    [request] = hook.requests
    body = request["body"]
    assert request["path"] == "/hook"
    assert (body["flow"], body["state"]) == ("refresh", "Failed")
    assert body["run_name"] == run.name and run.name.startswith("refresh-")
    assert "no-such-corpus is not a directory" in body["reason"]
    assert body["url"] == f"{UI}/runs/flow-run/{run.id}"
    assert body["url"] in body["text"] and run.name in body["text"]


def test_saved_webhook_block_delivers_the_message(failing_run):
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from flows.refresh import refresh

    with Webhook() as hook:
        CustomWebhookNotificationBlock(
            name="ops", url=hook.url, json_data={"subject": "{{subject}}", "body": "{{body}}"}
        ).save("faqforge-ops-test", overwrite=True)
        state = failing_run(refresh, "notify.webhook_block=custom-webhook/faqforge-ops-test")
    run = read_run(state.state_details.flow_run_id)
    [request] = hook.requests
    assert request["body"]["subject"] == "faqforge: refresh failed"
    text = request["body"]["body"]
    assert run.name in text and "no-such-corpus is not a directory" in text
    assert text.endswith(f"/runs/flow-run/{run.id}")  # PREFECT_UI_URL when notify.ui_url unset


def test_broken_webhook_is_logged_and_the_run_fails_for_its_own_reason(failing_run, flow_run_log):
    from flows.refresh import refresh

    with Webhook(status=500) as hook:
        state = failing_run(refresh, f"notify.webhook_url={hook.url}")
    assert len(hook.requests) == 1
    assert "is not a directory" in state.message  # not the webhook's error
    [logged] = [r for r in flow_run_log if r.getMessage().startswith("notify: failure notif")]
    assert "HTTPStatusError" in logged.getMessage() and hook.url not in logged.getMessage()


def test_a_failed_nested_flow_sends_one_message_from_its_parent(failing_run):
    from flows.pipeline import pipeline

    with Webhook() as hook:
        failing_run(pipeline, f"notify.webhook_url={hook.url}")
    assert [r["body"]["flow"] for r in hook.requests] == ["pipeline"]


def test_api_keys_are_masked_and_links_built():
    cfg = load_config(None, ["teacher.judge.api_key_env=JUDGE_KEY"])
    environ = {"FAQFORGE_TEACHER_API_KEY": "sk-teacher", "JUDGE_KEY": "sk-judge", "OTHER": "x"}
    secrets = secrets_in(cfg, environ)
    assert sorted(secrets) == ["sk-judge", "sk-teacher"]
    assert redact("401: key sk-teacher, then sk-judge", secrets) == "401: key ***, then ***"
    assert run_url(None, "abc") is None and run_url(UI + "/", "abc") == f"{UI}/runs/flow-run/abc"
    message = failure_message("refresh", "refresh-x", "abc", "Failed", "boom", None)
    assert message["text"] == "faqforge: refresh run refresh-x failed: boom"
