"""A tiny Llama-architecture student built locally, so nothing is downloaded from a model hub.

``build_tokenizer`` trains a byte-level BPE (Llama-3 split regex and special tokens, a Llama-3
chat template with ``{% generation %}`` markers) with the ``tokenizers`` library alone, so the
chunk stage can count student tokens without importing torch. ``build_tiny_llama`` adds a
randomly initialised 2-layer Llama saved with ``save_pretrained``; both load through the same
``from_pretrained`` path as a production model. Weights are random: the model only knows what
fine-tuning teaches it.

    >>> build_tiny_llama(Path(".faqforge/models/tiny-llama"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import cast

from faqforge.chat import LLAMA3_CHAT_TEMPLATE
from faqforge.storage import atomic_write_text

BOS = "<|begin_of_text|>"
EOS = "<|end_of_text|>"
START_HEADER = "<|start_header_id|>"
END_HEADER = "<|end_header_id|>"
EOT = "<|eot_id|>"
PAD = "<|finetune_right_pad_id|>"
SPECIAL_TOKENS = [BOS, EOS, START_HEADER, END_HEADER, EOT, PAD]

VOCAB_SIZE = 3072
MIN_CORPUS_BYTES = 20_000

# Llama-3's pre-tokenizer split. With GPT-2's split, "\n\n" before the answer merged with the
# answer's first word, so the generation prompt's ids were not a prefix of the conversation's.
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

_PACKAGE = Path(__file__).parent
WEIGHTS = "model.safetensors"


def training_texts() -> list[str]:
    """The bundled sample corpus, or this package's own source if the corpus is missing/small.

    Files are read in sorted order so the trained vocabulary is the same on every machine.
    """
    corpus = sorted(p for p in (_PACKAGE / "sample_corpus").rglob("*") if p.is_file())
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in corpus]
    if sum(len(t) for t in texts) < MIN_CORPUS_BYTES:
        source = sorted(p for ext in ("*.py", "*.md") for p in _PACKAGE.rglob(ext))
        texts += [p.read_text(encoding="utf-8", errors="replace") for p in source]
    return texts


def build_tokenizer(out_dir: Path) -> Path:
    """Train and save the tiny student's tokenizer into ``out_dir``; return tokenizer.json.

    Idempotent: an existing tokenizer.json (with its config) is returned as is.
    """
    out_dir = Path(out_dir)
    tok_file = out_dir / "tokenizer.json"
    if tok_file.is_file() and (out_dir / "tokenizer_config.json").is_file():
        return tok_file

    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(training_texts(), trainer=trainer)

    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        # Chat turns end with <|eot_id|>: generation stops there, as with Llama-3-Instruct.
        "eos_token": EOT,
        "pad_token": PAD,
        "model_max_length": 1024,
        "padding_side": "right",
        "clean_up_tokenization_spaces": False,
        "chat_template": LLAMA3_CHAT_TEMPLATE,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "tokenizer_config.json", json.dumps(config, indent=2))
    atomic_write_text(tok_file, tok.to_str(pretty=True))
    return tok_file


def build_tiny_llama(out_dir: Path, seed: int = 0) -> Path:
    """Build (once) a random 2-layer Llama with the tiny tokenizer; return the model folder.

    The same seed gives identical weights. A tokenizer already in ``out_dir`` (the chunk
    stage builds it first) is kept, so chunks were counted with the model's own tokenizer.
    The weights file is moved in last: its presence means the folder is complete.
    """
    out_dir = Path(out_dir)
    if (out_dir / WEIGHTS).is_file():
        return out_dir

    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    build_tokenizer(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    # One token each, so each id is an int (the stub also allows a list).
    ids = {t: cast(int, tokenizer.convert_tokens_to_ids(t)) for t in (BOS, EOT, EOS, PAD)}
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=32,  # vLLM's CPU attention needs head_dim >= 32
        intermediate_size=192,  # widths multiple of 32 for bitsandbytes' CPU 4-bit kernels
        max_position_embeddings=1024,
        tie_word_embeddings=False,
        bos_token_id=ids[BOS],
        eos_token_id=ids[EOT],
        pad_token_id=ids[PAD],
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=ids[BOS], eos_token_id=[ids[EOT], ids[EOS]], pad_token_id=ids[PAD]
    )
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".staging-"))
    try:
        model.save_pretrained(staging)
        names = sorted(p.name for p in staging.iterdir() if p.name != WEIGHTS)
        for name in [*names, WEIGHTS]:
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir
