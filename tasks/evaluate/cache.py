"""Content-addressed JSON cache of evaluation work: model answers and judge verdicts.

``<workspace>/cache/eval/<kind>/<key[:2]>/<key>.json``. A key hashes everything that changes
the result: for an answer the base model's identity, the adapter's content hash, the question
and the generation parameters; for a verdict the judge model, prompt version, messages and
parameters. Re-evaluating a run, or a champion on the same items, generates nothing new.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from faqforge.config import stable_hash
from faqforge.storage import file_hash, read_json, write_json

log = logging.getLogger(__name__)
# Files that identify a model folder without hashing gigabytes of weights: configs whole,
# weights by name and size.
_CONFIG_FILES = ("config.json", "generation_config.json", "tokenizer.json", "adapter_config.json")


def model_identity(model: str) -> str:
    """A hub name as is; a local folder as its path plus a hash of configs and weight sizes."""
    path = Path(model)
    if not path.is_dir():
        return model
    digest = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if f.name in _CONFIG_FILES:
            digest.update(f.name.encode() + f.read_bytes())
        elif f.suffix in (".safetensors", ".bin"):
            digest.update(f"{f.name}:{f.stat().st_size}".encode())
    return f"{path}@{digest.hexdigest()[:16]}"


def adapter_hash(adapter_dir: str | None) -> str | None:
    """Hash of a PEFT adapter's weights and config: what it does, wherever it lives."""
    if adapter_dir is None:
        return None
    folder = Path(adapter_dir)
    parts = [
        file_hash(folder / n)
        for n in ("adapter_config.json", "adapter_model.safetensors")
        if (folder / n).is_file()
    ]
    if not parts:
        raise FileNotFoundError(f"{folder} holds no adapter_model.safetensors: not a PEFT adapter")
    return stable_hash(parts)


class EvalCache:
    """``cache.get(kind, key_parts)`` / ``cache.put(kind, key_parts, value)``; dict values."""

    def __init__(self, root: Path):
        self.root = root
        self.hits = 0
        self.misses = 0

    def path(self, kind: str, parts: Any) -> Path:
        key = stable_hash(parts, 32)
        return self.root / kind / key[:2] / f"{key}.json"

    def get(self, kind: str, parts: Any) -> dict[str, Any] | None:
        path = self.path(kind, parts)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            value = read_json(path)
            if not isinstance(value, dict):
                raise ValueError(f"holds a {type(value).__name__}, not an object")
        except ValueError as exc:  # not JSON, not UTF-8, not an object: a miss
            log.warning("unreadable eval cache file %s (%s): computing again", path, exc)
            self.misses += 1
            return None
        self.hits += 1
        return value

    def put(self, kind: str, parts: Any, value: dict[str, Any]) -> None:
        write_json(self.path(kind, parts), value)
