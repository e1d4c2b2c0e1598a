"""Tokenised training rows: the chat template choice, truncation counts, and the cache, which
is keyed by pairs + tokenizer + template + max length so a changed tokenizer never reuses ids."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from faqforge.chat import LLAMA3_CHAT_TEMPLATE
from faqforge.config import FinetuneConfig
from faqforge.records import QAPair
from faqforge.tiny_llama import build_tokenizer
from tasks.training import data

CFG = FinetuneConfig(max_length=96)


def pair(i: int, answer: str = "It is kept in the blue cupboard.") -> QAPair:
    return QAPair(
        id=f"q{i}",
        question=f"Where is item {i} kept?",
        answer=answer,
        doc_id="d",
        chunk_id="c",
        source="s.md",
        prompt_version="t",
        teacher="t",
    )


def load(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    """The tiny tokenizer, and one trained with a smaller vocabulary (different merges)."""
    root = tmp_path_factory.mktemp("tokenizers")
    build_tokenizer(root / "a")
    mp = pytest.MonkeyPatch()
    mp.setattr("faqforge.tiny_llama.VOCAB_SIZE", 600)
    build_tokenizer(root / "b")
    mp.undo()
    return root / "a", root / "b"


def test_different_tokenizer_under_the_same_path_never_reuses_cached_tokens(tokenizers, tmp_path):
    a, b = tokenizers
    model_dir, cache = tmp_path / "model", tmp_path / "cache"
    shutil.copytree(a, model_dir)
    pairs, evals = [pair(0), pair(1)], [pair(2)]

    tok_a = load(model_dir)
    template = tok_a.chat_template
    train_a, _, stats = data.tokenized_splits(pairs, evals, tok_a, template, CFG, cache)
    assert stats["cache_hit"] is False
    again, _, stats_again = data.tokenized_splits(
        pairs, evals, load(model_dir), template, CFG, cache
    )
    assert stats_again["cache_hit"] is True and again["input_ids"] == train_a["input_ids"]

    # Same path, new tokenizer files (a re-trained or swapped tokenizer).
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(b / f, model_dir / f)
    tok_b = load(model_dir)
    train_b, _, stats_b = data.tokenized_splits(pairs, evals, tok_b, template, CFG, cache)
    assert stats_b["cache_hit"] is False and stats_b["cache_key"] != stats["cache_key"]
    fresh = [data.tokenize_pair(p, tok_b, template, CFG.system_prompt, 96) for p in pairs]
    assert train_b["input_ids"] == [r["input_ids"] for r in fresh]
    assert train_b["input_ids"] != train_a["input_ids"]
    assert len({p.name for p in cache.iterdir()}) == 2


@pytest.mark.parametrize(
    "change",
    [
        {"max_length": 64},  # truncation differs
        {"system_prompt": "Answer in French."},  # every prompt differs
    ],
)
def test_cache_key_follows_length_and_prompt(tokenizers, change):
    tok = load(tokenizers[0])
    key = data.cache_key([pair(0)], [pair(1)], tok, tok.chat_template, CFG)
    other = CFG.model_copy(update=change)
    assert data.cache_key([pair(0)], [pair(1)], tok, tok.chat_template, other) != key
    assert data.cache_key([pair(0)], [pair(1)], tok, tok.chat_template + " ", CFG) != key
    assert data.cache_key([pair(0)], [pair(9)], tok, tok.chat_template, CFG) != key


def test_truncated_rows_are_counted_and_answerless_rows_dropped(tokenizers):
    tok = load(tokenizers[0])
    prompt_len = (
        len(
            data.tokenize_pair(pair(0, "x"), tok, tok.chat_template, CFG.system_prompt, 10_000)[
                "input_ids"
            ]
        )
        - 2
    )  # "x" and <|eot_id|>
    long_answer = pair(1, "word " * 200)
    rows, counts = data.tokenize_pairs(
        [pair(0), long_answer], tok, tok.chat_template, CFG.system_prompt, prompt_len + 5
    )
    assert counts == {"truncated": 2, "dropped_no_answer": 0}
    assert all(len(r["input_ids"]) == prompt_len + 5 for r in rows)
    rows, counts = data.tokenize_pairs(
        [pair(0)], tok, tok.chat_template, CFG.system_prompt, prompt_len
    )
    assert (rows, counts["dropped_no_answer"]) == ([], 1)


def test_chat_template_choice(tokenizers, tmp_path):
    tok = load(tokenizers[0])
    assert data.resolve_chat_template("model", tok) == tok.chat_template
    assert data.resolve_chat_template("llama3", tok) == LLAMA3_CHAT_TEMPLATE
    custom = tmp_path / "t.jinja"
    custom.write_text(LLAMA3_CHAT_TEMPLATE)
    assert data.resolve_chat_template(str(custom), tok) == LLAMA3_CHAT_TEMPLATE
    # A template without generation markers (Meta's own Llama-3 one) cannot mask the prompt.
    tok.chat_template = LLAMA3_CHAT_TEMPLATE.replace("{%- generation %}", "").replace(
        "{%- endgeneration %}", ""
    )
    with pytest.raises(ValueError, match="chat_template to llama3"):
        data.resolve_chat_template("model", tok)
    with pytest.raises(FileNotFoundError, match="not 'model', 'llama3'"):
        data.resolve_chat_template(str(tmp_path / "missing.jinja"), tok)


def test_a_damaged_tokenized_cache_entry_is_rebuilt_not_read(tokenizers, tmp_path, caplog):
    a, _ = tokenizers
    cache = tmp_path / "cache"
    pairs, evals = [pair(0), pair(1)], [pair(2)]
    tok = load(a)
    first, _, _ = data.tokenized_splits(pairs, evals, tok, tok.chat_template, CFG, cache)
    expected = list(first["input_ids"])  # read now: the dataset maps the file damaged below
    (entry,) = cache.iterdir()
    arrow = next((entry / "train").glob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[:100])  # cut mid-file
    again, _, stats = data.tokenized_splits(pairs, evals, tok, tok.chat_template, CFG, cache)
    assert stats["cache_hit"] is False and "rebuilding" in caplog.text
    assert list(again["input_ids"]) == expected
    third, _, stats = data.tokenized_splits(pairs, evals, tok, tok.chat_template, CFG, cache)
    assert stats["cache_hit"] is True and list(third["input_ids"]) == expected
