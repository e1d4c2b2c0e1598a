"""The tiny local student: tokenizer properties the chat format relies on, deterministic build,
model/tokenizer resolution, and that stage modules stay free of torch at import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from faqforge.chat import prompt_messages, to_messages
from faqforge.config import FinetuneConfig, PipelineConfig
from faqforge.models import resolve_base_model, resolve_tokenizer_file
from faqforge.storage import Workspace
from faqforge.tiny_llama import EOT, build_tiny_llama, build_tokenizer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    # Idempotent build under the session's base temp: every test module shares one model.
    return build_tiny_llama(tmp_path_factory.getbasetemp() / "tiny-llama")


@pytest.fixture(scope="module")
def tokenizer(tiny_llama):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama)


def test_tokenizer_builds_without_torch_and_is_deterministic(tmp_path):
    code = (
        "import sys; from pathlib import Path; from faqforge.tiny_llama import build_tokenizer; "
        f"build_tokenizer(Path({str(tmp_path / 'a')!r})); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
    build_tokenizer(tmp_path / "b")
    assert (tmp_path / "a/tokenizer.json").read_text() == (
        tmp_path / "b/tokenizer.json"
    ).read_text()


def test_tokenizer_loads_with_llama3_specials(tokenizer):
    assert 2000 <= len(tokenizer) <= 4096
    assert tokenizer.eos_token == EOT
    assert tokenizer.pad_token_id is not None and tokenizer.pad_token_id != tokenizer.eos_token_id
    assert tokenizer.bos_token == "<|begin_of_text|>"
    # Special tokens stay whole, never split into bytes.
    assert tokenizer.tokenize("a<|eot_id|>b") == ["a", EOT, "b"]


def test_chat_template_has_generation_markers(tokenizer):
    from trl.chat_template_utils import has_generation_markers

    assert has_generation_markers(tokenizer.chat_template)


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("What is the refund policy?", "Refunds are paid within 30 days."),  # plain prose
        ("How do I run it?", "\n\nRun `make test`\n- then `make lint`"),  # leading newlines, lists
        ("Wie heißt das?", "Das heißt Übergröße, 1234567 Stück."),  # non-ASCII, long numbers
        ("  spaces?  ", "   indented answer"),  # whitespace the template trims
    ],
)
def test_generation_prompt_is_prefix_of_conversation(tokenizer, question, answer):
    system = FinetuneConfig().system_prompt
    prompt = tokenizer.apply_chat_template(
        prompt_messages(question, system), add_generation_prompt=True, tokenize=True
    )["input_ids"]
    full = tokenizer.apply_chat_template(
        to_messages(question, answer, system),
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    ids, mask = full["input_ids"], full["assistant_masks"]
    assert ids[: len(prompt)] == prompt
    # Exactly the answer and its stop token are the assistant's: nothing of the prompt.
    assert mask == [0] * len(prompt) + [1] * (len(ids) - len(prompt))
    assert ids[-1] == tokenizer.convert_tokens_to_ids(EOT)


def test_build_is_deterministic_and_idempotent(tiny_llama, tmp_path):
    from safetensors.torch import load_file

    # Same tokenizer files for all three (the corpus may change during a session).
    for name in ("again", "other"):
        (tmp_path / name).mkdir()
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(tiny_llama / f, tmp_path / name / f)
    again = build_tiny_llama(tmp_path / "again", seed=0)
    other = build_tiny_llama(tmp_path / "other", seed=1)
    a, b, c = (load_file(p / "model.safetensors") for p in (tiny_llama, again, other))
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a)
    assert any(not (a[k] == c[k]).all() for k in a)
    mtime = (again / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_llama(again, seed=0) == again
    assert (again / "model.safetensors").stat().st_mtime_ns == mtime


def test_model_loads_through_from_pretrained(tiny_llama):
    import torch
    from transformers import AutoModelForCausalLM

    from faqforge.models import LOAD_KWARGS

    model = AutoModelForCausalLM.from_pretrained(tiny_llama, **LOAD_KWARGS)
    cfg = model.config
    assert (cfg.model_type, cfg.hidden_size, cfg.num_hidden_layers, cfg.head_dim) == (
        "llama",
        64,
        2,
        32,
    )
    assert cfg.intermediate_size % 32 == 0 and not cfg.tie_word_embeddings
    logits = model(torch.tensor([[1, 2, 3]])).logits
    assert logits.shape == (1, 3, cfg.vocab_size)


def test_model_reuses_tokenizer_the_chunk_stage_built(tmp_path):
    ws = Workspace(tmp_path)
    tok_file = resolve_tokenizer_file(PipelineConfig(), ws)  # chunk stage: tokenizer only
    before = tok_file.read_bytes()
    model_dir = Path(resolve_base_model(FinetuneConfig(), ws))
    assert model_dir / "tokenizer.json" == tok_file
    assert tok_file.read_bytes() == before and (model_dir / "model.safetensors").is_file()


def test_tokenizer_resolution(tmp_path):
    ws = Workspace(tmp_path / "ws")
    build_tokenizer(tmp_path / "local")
    by_dir = PipelineConfig.model_validate({"chunk": {"tokenizer": str(tmp_path / "local")}})
    assert resolve_tokenizer_file(by_dir, ws) == tmp_path / "local/tokenizer.json"
    local_model = PipelineConfig.model_validate(
        {"finetune": {"base_model": str(tmp_path / "local")}}
    )
    assert resolve_tokenizer_file(local_model, ws) == tmp_path / "local/tokenizer.json"
    hub = PipelineConfig.model_validate({"finetune": {"base_model": "meta-llama/Llama-3.1-8B"}})
    with pytest.raises(ValueError, match=r"chunk\.tokenizer"):
        resolve_tokenizer_file(hub, ws)
    missing = PipelineConfig.model_validate({"chunk": {"tokenizer": str(tmp_path / "nope.json")}})
    with pytest.raises(FileNotFoundError, match=r"chunk\.tokenizer"):
        resolve_tokenizer_file(missing, ws)
    assert resolve_base_model(hub.finetune, ws) == "meta-llama/Llama-3.1-8B"


@pytest.mark.parametrize("module", ["tasks.finetune", "tasks.evaluate.stage", "faqforge.models"])
def test_stage_modules_do_not_import_torch(module):
    code = f"import sys, {module}; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
