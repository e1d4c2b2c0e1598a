"""Shared fixtures: one Prefect test harness per session, tiny models built once."""

from __future__ import annotations

import os
import subprocess
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


ROOT = Path(__file__).resolve().parent.parent
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """``.venv-vllm``'s Python, set up on first use (``scripts/setup-vllm``: about 3 minutes
    once, a no-op after): only a run that selects the vllm tier pays for it."""
    subprocess.run([str(ROOT / "scripts" / "setup-vllm")], check=True, timeout=1200)
    return VLLM_PYTHON


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory, vllm_python):
    """One real vLLM OpenAI-compatible server per session, on a tiny locally built Llama;
    stopped at the end of the session by its process group."""
    from faqforge.tiny_llama import build_tiny_llama
    from testsupport.local_vllm import LocalVLLM

    root = tmp_path_factory.mktemp("vllm")
    model = build_tiny_llama(root / "model")
    with LocalVLLM(vllm_python, model, root / "server.log") as server:
        yield server


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """One ``prefect server start`` on 127.0.0.1 for flows run as subprocesses (killed,
    raced): each would otherwise start its own temporary API (10-20 s). Stopped by PID."""
    from testsupport.prefect_server import prefect_server

    with prefect_server(tmp_path_factory.mktemp("prefect-api")) as api:
        yield api


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """The tiny random Llama (faqforge/tiny_llama.py), built once per session."""
    from testsupport.planted import tiny_model

    return tiny_model(tmp_path_factory)


@pytest.fixture(scope="session")
def planted_run(tmp_path_factory) -> dict:
    """A finetune run on the planted facts (``support/planted.py``), trained once per session
    for the fine-tuning and evaluation tests."""
    from testsupport.planted import train_planted

    return train_planted(tmp_path_factory)


@pytest.fixture
def proxy():
    """The fake OpenAI-compatible server behind a fault proxy, both on 127.0.0.1, stopped
    when the test ends."""
    from testsupport.fault_proxy import FaultProxy
    from testsupport.openai_server import OpenAICompatServer

    with OpenAICompatServer() as server, FaultProxy(server.base_url) as prx:
        yield prx


@pytest.fixture(scope="session")
def lineage_chain(prefect_harness, tmp_path_factory) -> dict:
    """One real refresh → finetune → evaluate chain per session (``support/chain.py``)."""
    from testsupport.chain import run_chain

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)  # the config's relative paths (the GX suite) resolve from here
        return run_chain(tmp_path_factory.mktemp("chain"))


@pytest.fixture(scope="module")
def chain(lineage_chain):
    """The session's chain, read with the checkout as the working folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        yield lineage_chain
