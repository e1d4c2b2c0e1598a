"""bench/chaos.py at a small N: random SIGKILLs and teacher faults lose nothing, duplicate
nothing, never show a partial version, and end with the fault-free run's dataset."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from chaos import run_chaos

pytestmark = pytest.mark.slow


def test_chaos_at_small_n_loses_and_duplicates_nothing(prefect_api, tmp_path):
    report = run_chaos(runs=3, seed=3, kill_chance=1.0, max_kills=1, fault_share=0.2,
                       api_url=prefect_api.url, workdir=tmp_path)  # fmt: skip
    print(report.lines())
    assert report.runs == 3 and report.kills >= 1 and sum(report.faults.values()) > 0
    assert report.records_lost == 0 and report.duplicates == 0 and report.partial_seen == 0
    assert report.identical == [True, True, True] and report.ok
