"""Where the student model and its tokenizer come from: the built-in tiny Llama or a local folder.

Nothing is downloaded at run time. ``builtin:tiny-llama`` is built into the workspace on first
use; any other ``base_model`` is passed to ``from_pretrained`` as is (a local folder, or a hub
name that must already be in the local Hugging Face cache). Models load with
``trust_remote_code=False`` and ``use_safetensors=True`` (see ``LOAD_KWARGS``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from faqforge.config import FinetuneConfig, PipelineConfig
from faqforge.storage import Workspace

BUILTIN_TINY = "builtin:tiny-llama"
TINY_DIR = "tiny-llama"

# Every from_pretrained call: no code from a model repo runs, no pickle is unpickled.
LOAD_KWARGS: dict[str, Any] = {"trust_remote_code": False, "use_safetensors": True}


def resolve_base_model(cfg: FinetuneConfig, workspace: Workspace) -> str:
    """The ``from_pretrained`` argument for the student: builds the tiny Llama if asked for."""
    if cfg.base_model == BUILTIN_TINY:
        from faqforge.tiny_llama import build_tiny_llama

        return str(build_tiny_llama(workspace.models / TINY_DIR, seed=cfg.seed))
    return cfg.base_model


def resolve_tokenizer_file(cfg: PipelineConfig, workspace: Workspace) -> Path:
    """The tokenizer.json the chunk stage counts tokens with, without importing torch.

    ``chunk.tokenizer`` wins (a tokenizer.json or a folder holding one); otherwise the
    student's own tokenizer, so chunk sizes are measured in the tokens the student sees.
    """
    if cfg.chunk.tokenizer:
        return _tokenizer_json(Path(cfg.chunk.tokenizer), "chunk.tokenizer")
    base = cfg.finetune.base_model
    if base == BUILTIN_TINY:
        from faqforge.tiny_llama import build_tokenizer

        return build_tokenizer(workspace.models / TINY_DIR)
    if Path(base).is_dir():
        return _tokenizer_json(Path(base), "finetune.base_model")
    raise ValueError(
        f"finetune.base_model={base!r} is not a local folder, and nothing is downloaded at run "
        "time: set chunk.tokenizer to a local tokenizer.json (or a model folder holding one)."
    )


def _tokenizer_json(path: Path, field: str) -> Path:
    candidate = path / "tokenizer.json" if path.is_dir() else path
    if not candidate.is_file():
        raise FileNotFoundError(
            f"{field}: no tokenizer.json at {candidate}; point it at a tokenizer.json file "
            "or a model folder that contains one."
        )
    return candidate
