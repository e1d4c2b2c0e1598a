"""Checkpoints and `--resume`: a training process killed with SIGKILL mid-run continues from its
last complete checkpoint and ends with as many optimiser steps as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tasks.finetune as ft
from faqforge.config import FinetuneConfig
from faqforge.storage import Workspace, read_json
from tasks.training.launch import TrainSpec
from tasks.training.recipe import last_checkpoint
from testsupport.planted import publish_planted, tiny_model

REPO = Path(__file__).resolve().parents[1]
STEPS, SAVE_EVERY = 60, 10


def test_last_checkpoint_skips_one_killed_while_saving(tmp_path):
    for step, state in ((10, '{"global_step": 10}'), (20, '{"global_step": 20}'), (30, '{"glo')):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    (tmp_path / "checkpoint-40").mkdir()  # killed before its state was written
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoint-20"
    assert last_checkpoint(tmp_path / "none") is None


def kill_after_first_checkpoint(spec_path: Path, trainer_dir: Path) -> int:
    """Start training in a subprocess; SIGKILL it once a checkpoint is complete."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tasks.training.launch", str(spec_path)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while last_checkpoint(trainer_dir) is None:
        assert proc.poll() is None, "training ended before any checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    return proc.wait()


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_step_count(tmp_path_factory, tmp_path):
    dataset = publish_planted(tmp_path / "ds")
    cfg = FinetuneConfig(
        base_model=str(tiny_model(tmp_path_factory)),
        max_steps=STEPS,
        save_steps=SAVE_EVERY,
        eval_steps=STEPS,
        sample_questions=0,
        batch_size=4,
        max_length=128,
    )
    uninterrupted = ft.train_run(dataset, cfg, Workspace(tmp_path / "once"))["metrics"]

    ws = Workspace(tmp_path / "killed")
    run_dir = ws.runs / ft.run_id("ds-planted", cfg)
    run_dir.mkdir(parents=True)
    spec = TrainSpec(
        run_id=run_dir.name,
        base_model=cfg.base_model,
        dataset={"version": "ds-planted", "content_hash": "test", "dir": str(dataset)},
        run_dir=str(run_dir),
        cache_dir=str(ws.root / "cache" / "tokenized"),
        config=cfg.model_dump(mode="json"),
    )
    spec_path = spec.save(run_dir / "train_spec.json")
    assert kill_after_first_checkpoint(spec_path, run_dir / "trainer") == -signal.SIGKILL
    assert not (run_dir / "train_metrics.json").exists()  # killed mid-run, not finished
    killed_at = int(last_checkpoint(run_dir / "trainer").name.split("-")[1])
    assert 0 < killed_at < STEPS

    resumed = ft.train_run(dataset, cfg, ws, resume=True)["metrics"]
    assert resumed["resumed_from_step"] == killed_at
    assert resumed["steps"] == uninterrupted["steps"] == STEPS
    state = read_json(run_dir / "trainer_state.json")
    assert state["global_step"] == STEPS
    # The log spans both processes: losses from before the kill and after the resume.
    logged = [e["step"] for e in state["log_history"] if "loss" in e]
    assert min(logged) <= killed_at < max(logged) == STEPS
    # Same data order, RNG and optimiser state: the resumed run lands where the other did.
    assert resumed["train_loss_last"] == pytest.approx(uninterrupted["train_loss_last"], rel=0.05)
    assert (run_dir / "adapter" / Workspace.SUCCESS).is_file()


def test_cli_offers_resume():
    out = subprocess.run(
        [sys.executable, "-m", "faqforge.cli", "run", "finetune", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )
    assert out.returncode == 0 and "--resume" in out.stdout


@pytest.mark.slow
def test_report_to_tensorboard_writes_event_files(tmp_path_factory, tmp_path):
    pytest.importorskip("tensorboard")
    from tasks.training.recipe import train_adapter
    from testsupport.planted import planted_pairs

    pairs = planted_pairs()
    cfg = FinetuneConfig(max_steps=4, eval_steps=2, report_to=["tensorboard"], sample_questions=0)
    train_adapter(str(tiny_model(tmp_path_factory)), pairs, pairs[:4], cfg, tmp_path)
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert events and sum(e.stat().st_size for e in events) > 0
