"""bench/gpu_check.py end to end on CPU (``--tiny``): QLoRA training on the production recipe,
vLLM serving its adapter at concurrency 1 and 32, and vLLM's own bench serve as the ceiling,
so the check is ready, not rotten, the day a GPU machine is lent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def test_gpu_check_runs_end_to_end_on_cpu(tmp_path, vllm_python):
    out = tmp_path / "check.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--tiny", "--steps", "2",
         "--vllm-python", str(vllm_python), "--work", str(tmp_path / "work"), "--json", str(out)],
        capture_output=True, text=True, timeout=1500, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    check = json.loads(out.read_text())
    assert check["device"] == "cpu" and check["seq_len"] == 128 and check["batch"] == 2
    assert check["train_tokens_per_s"] > 0 and check["peak_memory_gib"] > 0
    assert set(check["serve"]) == {"1", "32"} and all(v > 0 for v in check["serve"].values())
    assert check["ceiling_tokens_per_s"] and check["ceiling_tokens_per_s"] > 0
    adapter = json.loads((tmp_path / "work" / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 16  # the production config's LoRA rank
    table = done.stdout
    assert "2,413 (torchtune, RTX 4090)" in table and "7.4 (torchtune, RTX 4090)" in table
    assert "ceiling: vllm bench serve" in table
