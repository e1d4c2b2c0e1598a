"""Vectors of texts (sentence embeddings, MinHash signatures) kept across runs by text hash.

A nightly refresh in which one document changed sends dedup almost the same pairs as the
night before: without this, every question and answer is embedded and hashed again. Each
vector is stored under ``sha256(kind + text)`` in one SQLite file per kind
(``<workspace>/cache/vectors/<kind>.sqlite``), where ``kind`` names everything else the vector
depends on (model and sequence cap; shingle size, permutations and seed), so a config change
never reads another config's vectors. A lost or deleted file only costs the recomputation.
Not covered: eviction (a vector is ~1.5 KB; 100k texts are ~150 MB).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
Compute = Callable[[list[str]], np.ndarray]  # texts → (len(texts), width) vectors


class VectorCache:
    """Rows of one dtype and width, one per distinct text, in a SQLite file."""

    def __init__(self, folder: Path, kind: str, dtype: str, lock_timeout: float = 60) -> None:
        self.kind, self.dtype, self.lock_timeout = kind, np.dtype(dtype), lock_timeout
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{kind}.sqlite"
        self.hits = self.misses = 0

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.kind}\0{text}".encode()).hexdigest()

    def _connect(self) -> sqlite3.Connection:
        # WAL: concurrent runs on one workspace read while another writes.
        db = sqlite3.connect(self.path, timeout=self.lock_timeout)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB)")
        return db

    def vectors(self, texts: list[str], compute: Compute) -> np.ndarray:
        """``compute``'s rows for ``texts``, computing (in one call) only the distinct texts
        not stored yet, and storing them. A damaged file is a miss: it is replaced."""
        if not texts:
            return compute([])
        try:
            return self._vectors(texts, compute)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise  # locked or unreadable, not damaged: another run's file is no miss
            log.warning("vector cache %s is damaged (%s): rebuilding it", self.path, exc)
            for path in self.path.parent.glob(f"{self.path.name}*"):  # with its -wal, -shm
                path.unlink()
            return self._vectors(texts, compute)

    def _vectors(self, texts: list[str], compute: Compute) -> np.ndarray:
        distinct = list(dict.fromkeys(texts))
        keys = [self._key(t) for t in distinct]
        found: dict[str, np.ndarray] = {}
        db = self._connect()
        try:
            for lo in range(0, len(keys), 900):  # SQLite's limit on bound parameters
                part = keys[lo : lo + 900]
                marks = ",".join("?" * len(part))
                rows = db.execute(f"SELECT key, vec FROM vectors WHERE key IN ({marks})", part)
                found.update((k, np.frombuffer(v, dtype=self.dtype)) for k, v in rows)
            missing = [(k, t) for k, t in zip(keys, distinct, strict=True) if k not in found]
            self.hits += len(distinct) - len(missing)
            self.misses += len(missing)
            if missing:
                computed = compute([t for _, t in missing]).astype(self.dtype, copy=False)
                blobs = [(k, v.tobytes()) for (k, _), v in zip(missing, computed, strict=True)]
                with db:
                    db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", blobs)
                found.update((k, v) for (k, _), v in zip(missing, computed, strict=True))
        finally:
            db.close()
        row = dict(zip(distinct, keys, strict=True))
        return np.stack([found[row[t]] for t in texts])
