"""Planted facts a random model cannot know, a published dataset of them, and the tiny Llama
trained on it: the fine-tuning and evaluation tests' shared data (fixtures in conftest)."""

from __future__ import annotations

from pathlib import Path

import tasks.finetune as ft
from faqforge.config import FinetuneConfig
from faqforge.records import KNOWLEDGE, UNSEEN_DOCUMENTS, EvalItem, QAPair
from faqforge.storage import write_json, write_jsonl
from faqforge.tiny_llama import build_tiny_llama

# Twenty made-up facts the random model cannot know: only fine-tuning can put them there.
THINGS = [
    "kettle",
    "printer",
    "badge",
    "locker",
    "bicycle",
    "laptop",
    "umbrella",
    "stapler",
    "monitor",
    "chair",
    "desk",
    "lamp",
    "phone",
    "mug",
    "kayak",
    "tent",
    "drone",
    "piano",
    "scooter",
    "camera",
]
COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white", "pink", "grey"]
# lr 5e-3: at 2e-3, 200 steps only reach loss ~1.3 on this data. Evaluations at 0, 50, 100, 150.
FAST = {"max_steps": 150, "learning_rate": 5e-3, "max_length": 128, "eval_steps": 50}


def planted_pairs() -> list[QAPair]:
    return [
        QAPair(
            id=f"p{i}",
            question=f"What colour is the {thing}?",
            answer=f"The {thing} is {COLOURS[i % len(COLOURS)]}.",
            doc_id="d",
            chunk_id=f"c{i}",
            source="planted.md",
            prompt_version="test",
            teacher="planted",
        )
        for i, thing in enumerate(THINGS)
    ]


# Things no training pair mentions: the unseen-documents probe of the planted dataset.
UNSEEN_THINGS = ["ladder", "kite", "sofa", "oven"]


def publish_planted(root: Path, version: str = "ds-planted") -> Path:
    """A published dataset folder. Its knowledge probe repeats 8 training questions verbatim
    (each taught by its own twin: memorisation is the test, not phrasing); its unseen probe
    asks about 4 things never trained on, where only the answer's style can improve."""
    pairs = planted_pairs()
    knowledge = [EvalItem(**p.to_dict(), probe=KNOWLEDGE, taught_by=[p.id]) for p in pairs[:8]]
    unseen = [
        EvalItem(
            id=f"u{i}", question=f"What colour is the {thing}?", answer=f"The {thing} is grey.",
            doc_id="unseen", chunk_id=f"u{i}", source="unseen.md", prompt_version="test",
            teacher="planted", probe=UNSEEN_DOCUMENTS,
        )
        for i, thing in enumerate(UNSEEN_THINGS)
    ]  # fmt: skip
    write_jsonl(root / "train.jsonl", pairs)
    write_jsonl(root / "eval.jsonl", [*knowledge, *unseen])
    write_json(root / "manifest.json", {"version": version, "content_hash": "test"})
    return root


def tiny_model(tmp_path_factory) -> Path:
    """The tiny Llama, built once per session under its base temp (the build is idempotent)."""
    return build_tiny_llama(tmp_path_factory.getbasetemp() / "tiny-llama")


def train_planted(tmp_path_factory) -> dict:
    """A finetune run on the planted facts under the session's base temp: a second call gets
    the finished run (same dataset + config: the finetune task skips training)."""
    ws = tmp_path_factory.getbasetemp() / "ws-planted"
    dataset = ws / "datasets" / "ds-planted"
    if not (dataset / "manifest.json").is_file():
        publish_planted(dataset)
    cfg = FinetuneConfig(base_model=str(tiny_model(tmp_path_factory)), merge=True, **FAST)
    summary = ft.finetune.fn(str(dataset), cfg, str(ws))
    return {"summary": summary, "ws": ws, "cfg": cfg, "dataset": dataset}
