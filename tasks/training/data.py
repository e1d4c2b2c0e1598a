"""Training rows: QA pairs → token ids with assistant-only labels, cached by what shapes them.

Each pair becomes a chat (system, question, answer) rendered by the chat template; tokens the
template marks as the assistant's (``{% generation %}`` … ``{% endgeneration %}``: the answer and
its stop token) keep their id as label, every prompt token gets -100 and so no loss. Rows are
cut to ``max_length``; a row left with no answer token is dropped and counted.

The cache key is the pairs' content + the tokenizer's full definition (vocab, merges,
normaliser, special tokens) + the chat template + max length + system prompt: a different
tokenizer, even one saved under the same path, can never reuse stale token ids.
Not handled: multi-turn chats, tool calls, images.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from faqforge.chat import PINNED_TEMPLATES, to_messages
from faqforge.config import FinetuneConfig, stable_hash
from faqforge.records import QAPair
from faqforge.storage import Workspace

log = logging.getLogger(__name__)

IGNORE = -100  # the label that takes a token out of the loss


def resolve_chat_template(choice: str, tokenizer: Any) -> str:
    """The template text for ``finetune.chat_template``; it must mark the assistant's tokens."""
    from trl.chat_template_utils import has_generation_markers

    if choice == "model":
        template, where = tokenizer.chat_template, "the tokenizer's own chat template"
        if not template:
            raise ValueError(
                "finetune.chat_template=model, but the tokenizer has no chat template: "
                "set finetune.chat_template to llama3 or to a .jinja file"
            )
    elif choice in PINNED_TEMPLATES:
        template, where = PINNED_TEMPLATES[choice], f"the pinned {choice} template"
    else:
        path = Path(choice)
        if not path.is_file():
            raise FileNotFoundError(
                f"finetune.chat_template={choice!r}: not 'model', 'llama3', 'chatml' or an "
                "existing file"
            )
        template, where = path.read_text(encoding="utf-8"), str(path)
    if not has_generation_markers(template):
        raise ValueError(
            f"{where} has no {{% generation %}} … {{% endgeneration %}} markers, so prompt and "
            "answer tokens cannot be told apart for assistant-only loss: set "
            "finetune.chat_template to llama3 (Llama-3 format), chatml (SmolLM2, Qwen) or to a "
            ".jinja file with markers"
        )
    return template


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of everything that decides which ids a text becomes."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    definition = backend.to_str() if backend is not None else sorted(tokenizer.get_vocab().items())
    specials = {str(k): str(v) for k, v in tokenizer.special_tokens_map.items()}
    return stable_hash({"definition": definition, "specials": specials})


def tokenize_pair(
    pair: QAPair, tokenizer: Any, template: str, system_prompt: str, max_length: int
) -> dict[str, list[int]]:
    """``{"input_ids", "labels"}`` of one chat; labels are -100 outside the assistant turn."""
    out = tokenizer.apply_chat_template(
        to_messages(pair.question, pair.answer, system_prompt),
        chat_template=template,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    ids, mask = list(out["input_ids"]), out["assistant_masks"]
    labels = [tok if keep else IGNORE for tok, keep in zip(ids, mask, strict=True)]
    return {"input_ids": ids[:max_length], "labels": labels[:max_length]}


def tokenize_pairs(
    pairs: list[QAPair], tokenizer: Any, template: str, system_prompt: str, max_length: int
) -> tuple[list[dict[str, list[int]]], dict[str, int]]:
    """Rows for training, and counts: ``truncated`` rows, ``dropped_no_answer`` rows."""
    rows, counts = [], {"truncated": 0, "dropped_no_answer": 0}
    for pair in pairs:
        row = tokenize_pair(pair, tokenizer, template, system_prompt, max_length + 1)
        if len(row["input_ids"]) > max_length:
            counts["truncated"] += 1
            row = {k: v[:max_length] for k, v in row.items()}
        if all(label == IGNORE for label in row["labels"]):
            counts["dropped_no_answer"] += 1
            log.warning(
                "pair %s: no answer token within max_length=%d; dropped", pair.id, max_length
            )
            continue
        rows.append(row)
    return rows, counts


def cache_key(
    train: list[QAPair], eval_: list[QAPair], tokenizer: Any, template: str, cfg: FinetuneConfig
) -> str:
    return stable_hash(
        {
            "pairs": stable_hash([[p.to_dict() for p in train], [p.to_dict() for p in eval_]]),
            "tokenizer": tokenizer_fingerprint(tokenizer),
            "chat_template": template,
            "max_length": cfg.max_length,
            "system_prompt": cfg.system_prompt,
        }
    )


def _hashes(entry: Path) -> dict[str, str]:
    from faqforge.storage import file_hash

    return {
        p.relative_to(entry).as_posix(): file_hash(p)
        for p in sorted(entry.rglob("*"))
        if p.is_file() and p.name != Workspace.SUCCESS
    }


def _intact_entry(entry: Path) -> dict[str, Any] | None:
    """The stats of a finished cache entry whose files match their recorded hashes; a
    damaged one is a miss (logged, then rebuilt)."""
    if not (entry / Workspace.SUCCESS).is_file():
        return None
    try:
        done = json.loads((entry / Workspace.SUCCESS).read_text(encoding="utf-8"))
        expected = done.pop("sha256")
    except KeyError:
        log.info("tokenized cache %s: written without file hashes (older faqforge): rebuilding",
                 entry)  # fmt: skip
        return None
    except (ValueError, TypeError, AttributeError) as exc:
        log.warning("tokenized cache %s: unreadable marker (%s): rebuilding", entry, exc)
        return None
    if _hashes(entry) != expected:
        log.warning("tokenized cache %s: files differ from their recorded hashes: rebuilding",
                    entry)  # fmt: skip
        return None
    return dict(done)


def tokenized_splits(
    train: list[QAPair],
    eval_: list[QAPair],
    tokenizer: Any,
    template: str,
    cfg: FinetuneConfig,
    cache_dir: Path | None,
) -> tuple[Any, Any, dict[str, Any]]:
    """``(train, eval)`` as ``datasets.Dataset`` of input_ids/labels, and the cache facts.

    With ``cache_dir``, rows are read from ``cache_dir/<key>/`` when present, else built and
    saved there (staged, then renamed: a half-written cache entry is never read).
    """
    from datasets import Dataset, load_from_disk

    key = cache_key(train, eval_, tokenizer, template, cfg)
    entry = cache_dir / key if cache_dir else None
    if entry is not None and (stats := _intact_entry(entry)) is not None:
        return load_from_disk(entry / "train"), load_from_disk(entry / "eval"), stats
    args = (tokenizer, template, cfg.system_prompt, cfg.max_length)
    train_rows, train_counts = tokenize_pairs(train, *args)
    eval_rows, _ = tokenize_pairs(eval_, *args)
    for name, rows in (("training", train_rows), ("eval", eval_rows)):
        if not rows:
            raise ValueError(
                f"no {name} pair has an answer token within max_length={cfg.max_length}: "
                "raise finetune.max_length"
            )
    stats = {"cache_key": key, "cache_hit": False, **train_counts}
    splits = Dataset.from_list(train_rows), Dataset.from_list(eval_rows)
    if entry is not None:
        staging = entry.with_name(f".{key}.{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        for name, split in zip(("train", "eval"), splits, strict=True):
            split.save_to_disk(staging / name)
        done = {**stats, "cache_hit": True, "sha256": _hashes(staging)}
        (staging / Workspace.SUCCESS).write_text(json.dumps(done))
        if _intact_entry(entry) is not None:  # another process finished the same key first
            shutil.rmtree(staging)
        else:
            shutil.rmtree(entry, ignore_errors=True)  # damaged: replaced
            os.rename(staging, entry)
        splits = load_from_disk(entry / "train"), load_from_disk(entry / "eval")
    return *splits, stats
