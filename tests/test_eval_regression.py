"""The general-ability regression check: skipped with a reason when it cannot run, and a real
lm-evaluation-harness run on a tiny local ARC-format file (nothing downloaded)."""

from __future__ import annotations

import json

import pytest

from tasks.evaluate.regression import regression_check, regression_markdown, skip_reason

# ARC-Easy's row format; four made-up questions (the harness needs no more).
ARC_ROWS = [
    {"id": "t1", "question": "Which colour is the sky on a clear day?",
     "choices": {"text": ["green", "blue", "red", "black"], "label": ["A", "B", "C", "D"]},
     "answerKey": "B"},
    {"id": "t2", "question": "What do plants need to make food?",
     "choices": {"text": ["sunlight", "sand", "plastic"], "label": ["A", "B", "C"]},
     "answerKey": "A"},
    {"id": "t3", "question": "Which is a mammal?",
     "choices": {"text": ["shark", "trout", "whale", "frog"], "label": ["1", "2", "3", "4"]},
     "answerKey": "3"},
    {"id": "t4", "question": "Water freezes at what temperature in Celsius?",
     "choices": {"text": ["100", "0", "50"], "label": ["A", "B", "C"]},
     "answerKey": "B"},
]  # fmt: skip


def test_skips_with_a_reason(tmp_path):
    assert "no local dataset configured" in skip_reason({})
    missing = {"arc": tmp_path / "nope.jsonl"}
    assert "dataset file not found: arc:" in skip_reason(missing)
    result = regression_check("m", "a", missing, tmp_path / "h", None)
    assert "skipped" in result
    assert regression_markdown(result).startswith("Skipped: dataset file not found")


@pytest.mark.slow
def test_harness_runs_base_and_adapter_on_local_arc(tmp_path, tiny_llama):
    pytest.importorskip("lm_eval", reason="the harness extra is not installed")
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    data = tmp_path / "arc.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ARC_ROWS))
    # A freshly initialised adapter (LoRA B = 0) leaves the model unchanged: equal accuracy.
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    adapter = tmp_path / "adapter"
    get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj"])).save_pretrained(adapter)

    result = regression_check(str(tiny_llama), str(adapter), {"arc": data}, tmp_path / "h", None)
    print(result)
    base, tuned = result["base"]["faqforge_arc"], result["tuned"]["faqforge_arc"]
    assert set(base) == {"acc", "acc_norm"}
    assert all(v in (0.0, 0.25, 0.5, 0.75, 1.0) for v in base.values())  # 4 questions scored
    assert tuned == base
    assert (tmp_path / "h" / "faqforge_arc.yaml").is_file()
    assert "| faqforge_arc | acc |" in regression_markdown(result)
