"""The evaluate stage on a run trained on planted facts, where the tuned model must beat its
base: the files it writes, metrics.json's shape, the answer cache, promotion to CHAMPION and a
worse run held back, and a judge wired through the whole path (a scripted backend; the real
server is in test_eval_vllm.py). Metrics, judge parsing and the gate have their own modules."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import tasks.evaluate.stage as ev
from faqforge.config import EvaluateConfig, TeacherConfig
from faqforge.storage import read_json, write_json
from faqforge.teachers.base import Completion, Usage
from tasks.evaluate.grader import ANSWER_SCHEMA
from tasks.evaluate.metrics import REFERENCE_METRICS

METRICS = {*REFERENCE_METRICS, "judge_score"}


def test_importing_the_stage_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, tasks.evaluate.stage, flows.evaluate; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_generation_is_batch_independent(planted_run):
    from tasks.evaluate.answers import generate_transformers

    questions = ["What colour is the kettle?", "What colour is the umbrella?", "Hi?"]
    base, adapter = planted_run["cfg"].base_model, planted_run["summary"]["adapter_dir"]
    prompt = planted_run["cfg"].system_prompt
    cfg = EvaluateConfig(max_new_tokens=16)
    batched = generate_transformers(
        base, adapter, questions, cfg.model_copy(update={"batch_size": 3}), prompt
    )
    single = generate_transformers(
        base, adapter, questions, cfg.model_copy(update={"batch_size": 1}), prompt
    )
    assert batched == single  # left padding does not change greedy answers
    assert batched[0].text == "The kettle is red."  # stops at <|eot_id|>, special tokens dropped
    assert not batched[0].truncated  # it stopped on its own
    cut = generate_transformers(
        base, adapter, questions[:1], EvaluateConfig(max_new_tokens=2), prompt
    )
    assert cut[0].truncated and "The kettle is red.".startswith(cut[0].text)  # 2 tokens


@pytest.mark.slow
def test_evaluate_task_tuned_beats_base_and_is_promoted(planted_run):
    run_dir = Path(planted_run["summary"]["run_dir"])
    ws = planted_run["ws"]
    result = ev.evaluate.fn(str(run_dir), EvaluateConfig(max_items=6), str(ws))
    m = result["metrics"]
    print(f"\nbase {m['base']}  tuned {m['tuned']}  lift {m['knowledge_lift']}")
    # base / tuned are the knowledge probe's (the headline probe): 6 of its 8 items.
    assert m["probe"] == "knowledge" and m["probes"]["knowledge"]["n"] == 6
    assert m["tuned"]["rouge_l"] > m["base"]["rouge_l"] + 0.3
    assert m["tuned"]["token_f1"] > m["base"]["token_f1"] + 0.3
    assert m["tuned"]["key_term_recall"] > m["base"]["key_term_recall"]
    assert m["tuned"]["embedding_cosine"] > m["base"]["embedding_cosine"]
    assert m["tuned"]["exact_match"] >= 0.5
    assert set(m["base"]) == set(m["tuned"]) == METRICS
    assert m["base"]["judge_score"] is None  # no teacher given: judge skipped, key kept
    assert m["pairwise"] == {"win": None, "tie": None, "loss": None}
    lo, hi = m["ci95"]["delta"]["rouge_l"]
    assert 0 < lo <= m["tuned"]["rouge_l"] - m["base"]["rouge_l"] <= hi
    # The lift: what the tuned model gained on trained facts beyond its gain on things it
    # never saw (there only the answer's shape, "The X is Y.", can improve).
    lift = m["knowledge_lift"]
    unseen = m["probes"]["unseen_documents"]
    assert unseen["n"] == 4 and not lift["uncorrected"]
    assert lift["value"] == pytest.approx(lift["knowledge_gain"] - lift["unseen_gain"])
    assert lift["knowledge_gain"] == pytest.approx(m["tuned"]["token_f1"] - m["base"]["token_f1"])
    assert lift["ci95"][0] > 0 and lift["knowledge_gain"] > lift["unseen_gain"]
    assert unseen["answers"]["tuned"]["confident"] == 1.0  # it never says it does not know
    assert m["degenerate"]["tuned"]["degenerate"] is False
    assert m["headline"].startswith("On 6 held-out questions about facts it was trained on")
    assert m["n"] == 10 and m["dataset_version"] == "ds-planted"
    assert m["adapter"] == str(run_dir / "adapter")
    assert m["promoted"] is True
    assert (ws / "runs" / "CHAMPION").read_text().strip() == run_dir.name

    out = run_dir / "eval"
    assert result["report"] == str(out / "report.md")
    assert {p.name for p in out.iterdir()} == {
        "manifest.json",
        "metrics.json",
        "predictions.jsonl",
        "predictions.csv",
        "report.md",
        "scores.png",
    }
    assert json.loads((out / "metrics.json").read_text()) == m
    manifest = read_json(out / "manifest.json")
    # The eval manifest names the adapter within the workspace (portable, like the others).
    adapter = Path(m["adapter"]).relative_to(planted_run["ws"]).as_posix()
    assert (manifest["dataset_version"], manifest["adapter"]) == ("ds-planted", adapter)
    assert manifest["judge"]["note"] == "no teacher configuration was given"
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and rows[0]["tuned"] == "The kettle is red."
    assert [r["probe"] for r in rows] == ["knowledge"] * 6 + ["unseen_documents"] * 4
    with (out / "predictions.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 10 and float(table[0]["exact_match_tuned"]) == 1.0
    report = (out / "report.md").read_text()
    assert report.splitlines()[0] == m["headline"]  # the report opens with the sentence
    for shown in (
        "## Knowledge probe",
        "## Unseen-documents probe",
        "Knowledge lift on token_f1",
        "| rouge_l |",
        "| token_f1 |",
        "ds-planted",
        "**promoted**",
        "judge: skipped",
        "![score histogram](scores.png)",
        "| repetition |",
        "General-ability regression check",
        "Skipped: no local dataset configured",
        "- reference: The kettle is red.",
    ):
        assert shown in report, shown
    assert (out / "scores.png").read_bytes()[:4] == b"\x89PNG"
    card = (run_dir / "model_card.md").read_text()
    assert "## Evaluation" in card and m["headline"] in card


@pytest.mark.slow
def test_evaluating_again_generates_nothing(planted_run):
    """Its own first evaluation (answers generated, or read back if another test made them),
    then a second that finds every answer cached."""
    run_dir = Path(planted_run["summary"]["run_dir"])
    cfg, ws = EvaluateConfig(max_items=6), str(planted_run["ws"])
    first = ev.evaluate.fn(str(run_dir), cfg, ws)["metrics"]
    again = ev.evaluate.fn(str(run_dir), cfg, ws)
    manifest = read_json(run_dir / "eval" / "manifest.json")
    assert manifest["cache"] == {"hits": 20, "misses": 0}  # 10 questions x (base, tuned)
    assert again["metrics"]["tuned"] == first["tuned"]
    card = (run_dir / "model_card.md").read_text()
    assert card.count("## Evaluation") == 1  # the section is replaced, not appended again


def untrained_run(planted_run, run_id: str) -> Path:
    """A run whose adapter is freshly initialised (LoRA B = 0): it answers exactly as base."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    ws, base = planted_run["ws"], planted_run["cfg"].base_model
    run_dir = ws / "runs" / run_id
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj"])).save_pretrained(
        run_dir / "adapter"
    )
    manifest = read_json(Path(planted_run["summary"]["run_dir"]) / "manifest.json")
    write_json(
        run_dir / "manifest.json",
        {**manifest, "run_id": run_id, "adapter_dir": str(run_dir / "adapter")},
    )
    return run_dir


@pytest.mark.slow
def test_run_that_does_not_beat_base_is_not_promoted(planted_run):
    champion = Path(planted_run["summary"]["run_dir"]).name
    ev.evaluate.fn(
        planted_run["summary"]["run_dir"], EvaluateConfig(max_items=6), str(planted_run["ws"])
    )
    run_dir = untrained_run(planted_run, "ft-untrained")
    m = ev.evaluate.fn(str(run_dir), EvaluateConfig(max_items=6), str(planted_run["ws"]))["metrics"]
    assert m["tuned"]["rouge_l"] == m["base"]["rouge_l"]  # identical answers
    assert m["promoted"] is False
    assert (planted_run["ws"] / "runs" / "CHAMPION").read_text().strip() == champion
    assert m["champion"]["rouge_l"] > m["tuned"]["rouge_l"]  # champion re-scored on these items
    assert m["lineage"]["champion_before"] == champion
    report = (run_dir / "eval" / "report.md").read_text()
    assert "**not promoted**" in report
    assert "FAIL: rouge_l" in report and "vs base" in report and "vs champion" in report
    assert "FAIL: knowledge lift (token_f1) +0.000" in report  # no lift without learning


@pytest.mark.slow
def test_a_model_that_learned_to_say_nothing_is_named_and_never_promoted(planted_run, tmp_path):
    """The failure seen on git's manuals: every tuned answer empty, and nothing said so."""
    from dataclasses import replace

    import tasks.finetune as ft
    from faqforge.records import QAPair
    from faqforge.storage import read_records, write_jsonl
    from testsupport.planted import FAST, publish_planted

    dataset = publish_planted(tmp_path / "datasets" / "ds-silent", "ds-silent")
    train = read_records(dataset / "train.jsonl", QAPair)
    write_jsonl(dataset / "train.jsonl", [replace(p, answer="") for p in train])
    cfg = planted_run["cfg"].model_copy(update={**FAST, "max_steps": 40, "merge": False})
    summary = ft.finetune.fn(str(dataset), cfg, str(tmp_path))
    result = ev.evaluate.fn(summary["run_dir"], EvaluateConfig(), str(tmp_path))
    m = result["metrics"]
    assert m["degenerate"]["tuned"]["empty_share"] == 1.0
    assert m["headline"].startswith("DEGENERATE OUTPUT: 12 of 12 answers are empty")
    assert m["promoted"] is False and not (tmp_path / "runs" / "CHAMPION").exists()
    report = (Path(summary["run_dir"]) / "eval" / "report.md").read_text()
    assert report.startswith("DEGENERATE OUTPUT") and "FAIL: degenerate output" in report
    card = (Path(summary["run_dir"]) / "model_card.md").read_text()
    assert "DEGENERATE OUTPUT: 12 of 12 answers are empty" in card


class ReferenceJudge:
    """Grades 10 an answer equal to the reference and 1 otherwise; prefers that answer."""

    model = "reference-judge"

    async def chat(self, messages, schema, *, temperature, max_tokens):
        user = messages[1]["content"]
        ref = user.split("Reference answer:\n", 1)[1].split("\n\n", 1)[0]
        if schema is ANSWER_SCHEMA:
            answer = user.split("Assistant's answer:\n", 1)[1].split("\n\nReply", 1)[0]
            reply = {
                "reason": "matches" if answer == ref else "differs",
                "score": 10 if answer == ref else 1,
            }
        else:
            a = user.split("Answer A:\n", 1)[1].split("\n\nAnswer B:", 1)[0]
            b = user.split("Answer B:\n", 1)[1].split("\n\nReply", 1)[0]
            reply = {"reason": "r", "winner": "A" if a == ref else "B" if b == ref else "tie"}
        return Completion(json.dumps(reply), Usage(50, 10), "stop")

    async def aclose(self):
        pass


@pytest.mark.slow
def test_judge_results_reach_metrics_and_report(planted_run, monkeypatch):
    import faqforge.teachers

    monkeypatch.setattr(faqforge.teachers, "make_backend", lambda cfg, judge: ReferenceJudge())
    teacher = TeacherConfig(kind="openai", model="reference-judge")
    run_dir = planted_run["summary"]["run_dir"]
    m = ev.evaluate.fn(run_dir, EvaluateConfig(max_items=6), str(planted_run["ws"]), teacher)[
        "metrics"
    ]
    exact = m["tuned"]["exact_match"]
    assert m["tuned"]["judge_score"] == pytest.approx(10 * exact + 1 * (1 - exact))
    assert m["base"]["judge_score"] == 1.0
    # tuned wins exactly where it matches the reference, in both orders; elsewhere a tie
    assert m["pairwise"] == {
        "win": pytest.approx(exact),
        "tie": pytest.approx(1 - exact),
        "loss": 0.0,
    }
    assert m["lineage"]["judge"]["model"] == "reference-judge"
    report = (Path(run_dir) / "eval" / "report.md").read_text()
    assert "- win: " in report and "judge_score" in report
