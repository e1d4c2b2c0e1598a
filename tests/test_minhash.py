"""Vectorised MinHash against the reference, datasketch's own MinHash and true Jaccard."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHash

from tasks.minhash import LSHIndex, jaccard, shingles, signatures

Q = "How does the pipeline avoid paying for teacher calls on unchanged documents?"
A = "Each chunk is keyed by its text hash, prompt version and teacher model, so reruns hit."

TEXTS = [
    f"{Q} {A}",
    f"{Q} {A.replace('cache', 'store')}",
    f"{Q.replace('teacher', 'model')} {A.replace('prompt', 'template')}",
    "How is the train/eval split grouped? By source document, so none leaks.",
    "Why?",  # shorter than a shingle: one shingle
    "",  # no words: one empty shingle, as datasketch would see it
    " ".join(f"w{i}" for i in range(20_000)),  # larger than one numpy block
]


def reference(shingle_set: set[bytes], num_perm: int, seed: int) -> MinHash:
    """The straightforward datasketch loop: one ``update`` per shingle."""
    m = MinHash(num_perm=num_perm, seed=seed)
    for s in shingle_set:
        m.update(s)
    return m


@pytest.mark.parametrize(("size", "num_perm", "seed"), [(2, 128, 1), (3, 64, 7), (1, 256, 1)])
def test_signatures_equal_datasketch(size, num_perm, seed):
    sets = [shingles(t, size) for t in TEXTS]
    sigs = signatures(sets, num_perm, seed)
    refs = [reference(s, num_perm, seed) for s in sets]
    assert sigs.dtype == np.uint32 and sigs.shape == (len(TEXTS), num_perm)
    for sig, ref in zip(sigs, refs, strict=True):
        np.testing.assert_array_equal(sig, ref.hashvalues)
    for i in range(len(TEXTS)):  # so the Jaccard estimates agree exactly too
        assert jaccard(sigs[i], sigs).tolist() == [refs[i].jaccard(r) for r in refs]


def test_estimate_tracks_true_jaccard():
    sets = [shingles(t, 2) for t in TEXTS[:4]]
    sigs = signatures(sets, 256, 1)
    for i in range(4):
        for j in range(4):
            true = len(sets[i] & sets[j]) / len(sets[i] | sets[j])
            assert jaccard(sigs[i], sigs[j : j + 1])[0] == pytest.approx(true, abs=0.1)


@pytest.mark.parametrize(
    ("text", "size", "expected"),
    [
        ("The cache, the key.", 2, {b"the cache", b"cache the", b"the key"}),  # normalised
        ("Why?", 3, {b"why"}),  # shorter than the size: the whole text
        ("a b c", 3, {b"a b c"}),  # exactly the size
    ],
)
def test_shingles(text, size, expected):
    assert shingles(text, size) == expected


def test_lsh_index_finds_shared_band_only():
    sigs = signatures([shingles(t, 2) for t in TEXTS[:4]], 128, 1)
    index = LSHIndex(bands=32, rows=4)
    keys = index.band_keys(sigs)
    assert keys.shape == (4, 32)
    index.insert(0, keys[0])
    assert index.query(keys[0]) == {0}  # identical signature: every band collides
    assert index.query(keys[1]) == {0}  # a near duplicate (Jaccard ≈ 0.9) shares bands
    assert index.query(keys[3]) == set()  # an unrelated text shares none
