"""Vectors kept across runs by text hash: only new texts are computed, results unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from faqforge.config import DedupConfig
from faqforge.records import QAPair
from tasks import embeddings
from tasks.dedup import dedup_pairs, local_signer
from tasks.vector_cache import VectorCache


class Counting:
    """A real computation that records which texts it was asked for."""

    def __init__(self, compute):
        self.compute, self.calls = compute, []

    def __call__(self, texts, *rest):
        self.calls.append(list(texts))
        return self.compute(texts, *rest)


def lengths(texts):
    return np.array([[len(t), t.count("a")] for t in texts], dtype=np.float32).reshape(-1, 2)


def test_only_texts_not_stored_are_computed_and_rows_follow_the_input(tmp_path):
    first = Counting(lengths)
    out = VectorCache(tmp_path, "k", "float32").vectors(["aa", "b", "aa"], first)
    assert first.calls == [["aa", "b"]]  # each distinct text once
    assert out.tolist() == [[2, 2], [1, 0], [2, 2]]
    again = Counting(lengths)
    store = VectorCache(tmp_path, "k", "float32")  # a later run: a new process's view
    out = store.vectors(["ccc", "b", "aa"], again)
    assert again.calls == [["ccc"]]
    assert out.tolist() == [[3, 0], [1, 0], [2, 2]]
    assert (store.hits, store.misses) == (2, 1)


def test_another_kind_never_reads_these_vectors(tmp_path):
    VectorCache(tmp_path, "minhash-2w-128p", "float32").vectors(["aa"], lengths)
    other = Counting(lambda texts: np.ones((len(texts), 3), dtype=np.float32))
    out = VectorCache(tmp_path, "minhash-3w-128p", "float32").vectors(["aa"], other)
    assert other.calls == [["aa"]] and out.shape == (1, 3)


def test_no_texts_give_the_computation_s_empty_shape(tmp_path):
    out = VectorCache(tmp_path, "k", "float32").vectors([], lengths)
    assert out.shape == (0, 2)


def test_a_damaged_file_is_a_miss_and_is_rebuilt(tmp_path):
    (tmp_path / "k.sqlite").write_bytes(b"not a database, a torn copy" * 100)
    again = Counting(lengths)
    assert VectorCache(tmp_path, "k", "float32").vectors(["aa"], again).tolist() == [[2, 2]]
    assert again.calls == [["aa"]]
    assert VectorCache(tmp_path, "k", "float32").vectors(["aa"], again).tolist() == [[2, 2]]
    assert again.calls == [["aa"]]  # the rebuilt file holds it


def test_a_file_another_run_holds_locked_is_not_treated_as_damaged(tmp_path):
    import sqlite3

    VectorCache(tmp_path, "k", "float32").vectors(["aa"], lengths)
    holder = sqlite3.connect(tmp_path / "k.sqlite")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            VectorCache(tmp_path, "k", "float32", lock_timeout=0.1).vectors(["b"], lengths)
    finally:
        holder.rollback()
        holder.close()
    kept = Counting(lengths)
    assert VectorCache(tmp_path, "k", "float32").vectors(["aa"], kept).tolist() == [[2, 2]]
    assert kept.calls == []  # the file and its row survived


def pairs(n: int, tag: str = "") -> list[QAPair]:
    return [pair(i, tag) for i in range(n)]


def pair(i: int, tag: str) -> QAPair:
    return QAPair(
        id=f"p{i}{tag}", question=f"What does option {i % 7} of tool {i // 3} do{tag}?",
        answer=f"It sets value {i % 5} for the tool {i // 3}.", doc_id="d", chunk_id="c",
        source="s.md", prompt_version="v1", teacher="t",
    )  # fmt: skip


def test_dedup_reads_signatures_back_and_decides_the_same(tmp_path):
    cfg = DedupConfig(semantic=False)
    items = pairs(60)
    plain = dedup_pairs(items, cfg)
    cold = Counting(local_signer(cfg))
    assert dedup_pairs(items, cfg, cold, tmp_path) == plain
    assert sum(map(len, cold.calls)) == 120  # every question and question+answer text
    changed = items[:-1] + pairs(1, "new")
    warm = Counting(local_signer(cfg))
    kept, rejected = dedup_pairs(changed, cfg, warm, tmp_path)
    assert (kept, rejected) == dedup_pairs(changed, cfg)
    new = changed[-1]
    assert warm.calls == [[new.question, f"{new.question} {new.answer}"]]


@pytest.mark.slow  # loads all-MiniLM-L6-v2
def test_embeddings_of_seen_texts_are_read_back_without_the_model(tmp_path, monkeypatch):
    texts = ["How is a chunk keyed?", "What does dedup remove?"]
    cold = embeddings.embed(texts, cache_dir=tmp_path)
    assert np.allclose(cold, embeddings.embed(texts))
    encoded = Counting(embeddings._encode)  # the real encoder, counted
    monkeypatch.setattr(embeddings, "_encode", encoded)
    warm = embeddings.embed([texts[1], "Which split is frozen?", texts[0]], cache_dir=tmp_path)
    assert encoded.calls == [["Which split is frozen?"]]
    assert np.array_equal(warm[[2, 0]], cold)
