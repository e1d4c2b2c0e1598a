"""Failure notifications: a failed flow run tells ops which run failed, why, and where to look.

``notify_failure`` is the ``on_failure`` hook of every flow. It reads the run's own config
(its ``config`` and ``overrides`` parameters) for the ``notify`` section and sends the
message to ``notify.webhook_url`` (a plain JSON POST, Slack-compatible ``text`` included) or
through the saved Prefect notification block ``notify.webhook_block`` (``.notify(body,
subject)``). The hook never raises: a broken webhook is logged, and the run's own failure
stays what Prefect reports. A nested flow (refresh inside pipeline) leaves the message to
its parent, so one failure sends one message. Values of the API keys the config names are
masked in the message. Not handled: retrying a webhook that is down (one try, logged).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from faqforge.config import ConfigError, NotifyConfig, PipelineConfig, load_config

TIMEOUT_S = 10.0
MASK = "***"


def run_url(ui_url: str | None, run_id: str) -> str | None:
    """``run_url("http://127.0.0.1:4200", "abc")`` → ``http://127.0.0.1:4200/runs/flow-run/abc``.

    The run page lists its logs, artifacts and the state message.
    """
    return f"{ui_url.rstrip('/')}/runs/flow-run/{run_id}" if ui_url else None


def secrets_in(cfg: PipelineConfig, environ: dict[str, str] | None = None) -> list[str]:
    """The values of the API-key variables the config names (teacher, judge, evaluator)."""
    environ = dict(os.environ if environ is None else environ)
    names = {cfg.teacher.api_key_env, cfg.teacher.judge.api_key_env, cfg.evaluate.vllm_api_key_env}
    return [environ[n] for n in sorted(n for n in names if n) if environ.get(n)]


def redact(text: str, secrets: list[str]) -> str:
    """``redact("key sk-1 refused", ["sk-1"])`` → ``"key *** refused"``."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def failure_message(
    flow: str, run_name: str, run_id: str, state: str, reason: str, url: str | None
) -> dict[str, Any]:
    """The JSON body posted for a failed run; ``text`` is the one-line human version."""
    text = f"faqforge: {flow} run {run_name} {state.lower()}: {reason}"
    return {
        "text": f"{text}\n{url}" if url else text,
        "flow": flow,
        "run_name": run_name,
        "run_id": run_id,
        "state": state,
        "reason": reason,
        "url": url,
    }


def send(message: dict[str, Any], cfg: NotifyConfig) -> str | None:
    """Deliver ``message`` where ``cfg`` says; returns where it went (None: not configured).

    Raises on a failed delivery; the hook turns that into a log line. The URL itself is
    never returned or logged: a chat webhook URL is a credential.
    """
    if cfg.webhook_block:
        from prefect.blocks.core import Block

        block: Any = Block.load(cfg.webhook_block)
        subject = f"faqforge: {message['flow']} {message['state'].lower()}"
        block.notify(message["text"], subject)
        return f"block {cfg.webhook_block}"
    if cfg.webhook_url:
        import httpx

        httpx.post(cfg.webhook_url, json=message, timeout=TIMEOUT_S).raise_for_status()
        return "notify.webhook_url"
    return None


def run_config(parameters: dict[str, Any], log: logging.Logger | logging.LoggerAdapter) -> Any:
    """The failed run's config; when it cannot be read (maybe why the run failed), the
    defaults plus environment overrides (``FAQFORGE__NOTIFY__WEBHOOK_URL``)."""
    try:
        return load_config(parameters.get("config"), parameters.get("overrides"))
    except ConfigError as exc:
        log.warning("notify: the run's config did not load (%s); using defaults + environment", exc)
        return load_config(None)


def notify_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """``on_failure`` hook: post the failed run's name, reason and UI link; never raises."""
    from prefect.logging.loggers import flow_run_logger
    from prefect.settings import get_current_settings

    log = flow_run_logger(flow_run, flow)
    if flow_run.parent_task_run_id is not None:
        return  # a nested flow: its parent flow fails too and sends the message
    secrets: list[str] = []
    try:
        cfg = run_config(dict(flow_run.parameters or {}), log)
        ui_url = cfg.notify.ui_url or get_current_settings().ui_url
        secrets = [*secrets_in(cfg), *filter(None, [cfg.notify.webhook_url])]
        message = failure_message(
            flow.name,
            flow_run.name,
            str(flow_run.id),
            state.name or state.type.value,
            redact(state.message or "no reason given", secrets),
            run_url(ui_url, str(flow_run.id)),
        )
        where = send(message, cfg.notify)
    except Exception as exc:  # a broken webhook must not mask the run's own failure
        reason = redact(str(exc), secrets)
        log.error("notify: failure notification not sent: %s: %s", type(exc).__name__, reason)
        return
    if where:
        log.info("notify: failure of %s sent to %s", flow_run.name, where)
