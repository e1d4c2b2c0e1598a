"""MinHash signatures and an LSH band index, vectorised with numpy, bit-identical to datasketch.

A signature here equals ``datasketch.MinHash(num_perm, seed)`` updated with the same shingles
(its default "affine32" scheme: ``sha1_hash32`` of each shingle, the MurmurHash3 32-bit
finalizer, then ``a*h + b mod 2^32`` with datasketch's own seeded permutations). What changes
is the cost: one numpy pass over every shingle of a batch instead of a Python call and a
128-wide numpy update per shingle (``bench/dedup_quality_speed.py`` measures both).
The band index lives in this process (``LSHIndex``) or, for an index outside the worker's
memory that other processes can query, in Redis through datasketch's ``MinHashLSH`` (same
band layout, same candidates: ``band_indexes``). ``signature_shard`` is the Prefect task
that computes one shard's signatures on a scale-out runner (``faqforge.scaleout``).
Not covered: weighted MinHash, the "legacy"/"affine64" schemes, an index kept between runs.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any, Protocol

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.text import words

# The Redis password is read from this variable (datasketch resolves it at connect time), so
# it never sits in a config file or a manifest.
REDIS_PASSWORD_ENV = "FAQFORGE_REDIS_PASSWORD"
MAX_HASH = np.uint32(0xFFFFFFFF)  # datasketch's value for "no shingle seen"
# Fixed: a text gets the same signature on every run, so dedup and decontamination decide the
# same way every run.
SEED = 1
_BATCH_SHINGLES = 8192  # rows of the (shingles × num_perm) block: a few MB, stays in cache
_READ_BATCH = 10_000  # buckets read from Redis per pipeline


def shingles(text: str, size: int) -> set[bytes]:
    """Word shingles of the normalised text; a text shorter than ``size`` is one shingle.

    ``shingles("The cache, the key.", 2)`` → ``{b"the cache", b"cache the", b"the key"}``.
    """
    tokens = words(text)
    if len(tokens) <= size:
        return {" ".join(tokens).encode()}
    return {" ".join(tokens[i : i + size]).encode() for i in range(len(tokens) - size + 1)}


@cache
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine permutations ``(a, b)`` for ``(num_perm, seed)``, as uint32."""
    a, b = MinHash(num_perm=num_perm, seed=seed).permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's finalizer, in place (datasketch pre-mixes every shingle hash with it)."""
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


def shingle_hashes(sets: Sequence[set[bytes]]) -> np.ndarray:
    """``sha1_hash32`` (first 4 digest bytes, little-endian) of every shingle, set after set."""
    digests = b"".join(hashlib.sha1(s).digest()[:4] for shingle_set in sets for s in shingle_set)
    return np.frombuffer(digests, dtype="<u4").astype(np.uint32)


def signatures(sets: Sequence[set[bytes]], num_perm: int, seed: int) -> np.ndarray:
    """One MinHash signature per shingle set: a ``(len(sets), num_perm)`` uint32 array."""
    a, b = permutations(num_perm, seed)
    hashes = _fmix32(shingle_hashes(sets))
    ends = np.cumsum([len(s) for s in sets])
    starts = ends - np.array([len(s) for s in sets], dtype=ends.dtype)
    out = np.full((len(sets), num_perm), MAX_HASH, dtype=np.uint32)
    block = np.empty((_BATCH_SHINGLES, num_perm), dtype=np.uint32)
    first = 0
    while first < len(sets):
        # Whole sets per block; a set larger than the block gets a block of its own.
        last = max(int(np.searchsorted(ends, starts[first] + _BATCH_SHINGLES, "right")), first + 1)
        lo, hi = starts[first], ends[last - 1]
        rows = block[: hi - lo] if hi - lo <= len(block) else np.empty((hi - lo, num_perm), "u4")
        np.multiply(hashes[lo:hi, None], a, out=rows)
        rows += b  # wraps mod 2^32, as datasketch's uint32 arithmetic does
        for i in range(first, last):
            if ends[i] > starts[i]:
                np.min(rows[starts[i] - lo : ends[i] - lo], axis=0, out=out[i])
        first = last
    return out


def jaccard(sig: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Estimated Jaccard of one signature against each row of ``others`` (share of equal slots)."""
    return (others == sig).mean(axis=1)


class LSHIndex:
    """Band buckets of inserted signatures: ``query`` returns the ids sharing any bucket.

    ``bands × rows`` slots of each signature are used; two sets with Jaccard ``s`` share a bucket
    with probability ``1 - (1 - s^rows)^bands``. Candidates are meant to be verified with
    ``jaccard`` afterwards, so a band-key collision costs a check, never a false match.
    """

    def __init__(self, bands: int, rows: int) -> None:
        self.bands, self.rows = bands, rows
        rng = np.random.default_rng(0)
        # Odd 64-bit multipliers: a band's rows fold into one uint64 key (linear hash).
        self._mix = rng.integers(0, 2**63, size=rows, dtype=np.uint64) * 2 + 1
        self._buckets: list[defaultdict[int, list[int]]] = [defaultdict(list) for _ in range(bands)]

    def band_keys(self, sigs: np.ndarray) -> np.ndarray:
        """``(n, bands)`` uint64 bucket keys for ``(n, num_perm)`` signatures."""
        used = sigs[:, : self.bands * self.rows].astype(np.uint64)
        return (used.reshape(len(sigs), self.bands, self.rows) * self._mix).sum(axis=2)

    def query(self, keys: np.ndarray) -> set[int]:
        return {
            i for band, key in enumerate(keys.tolist()) for i in self._buckets[band].get(key, ())
        }

    def insert(self, item: int, keys: np.ndarray) -> None:
        for band, key in enumerate(keys.tolist()):
            self._buckets[band][key].append(item)


class LSHStorageError(RuntimeError):
    """The Redis server that should hold the LSH index cannot be used."""


class BandIndex(Protocol):
    """Band buckets over a fixed array of signatures, addressed by row number."""

    def query(self, item: int) -> set[int]: ...

    def insert(self, item: int) -> None: ...


class MemoryBands:
    """``LSHIndex`` over ``sigs``: band keys computed once, buckets in this process."""

    def __init__(self, sigs: np.ndarray, bands: int, rows: int) -> None:
        self.index = LSHIndex(bands, rows)
        self.keys = self.index.band_keys(sigs)

    def query(self, item: int) -> set[int]:
        return self.index.query(self.keys[item])

    def insert(self, item: int) -> None:
        self.index.insert(item, self.keys[item])


class RedisBands:
    """datasketch ``MinHashLSH`` on Redis holding every row's bands; the kept rows tracked here.

    All rows go in through one insertion session and each row's band-mates come back in one
    pipelined read per band: round trips per band, not per row and band. A 3,000-pair dedup
    took 28 s with per-row queries, 17 s so, 1.2 s in memory (shared 2-core machine): the
    cost left is redis-py building and parsing ~300k commands. ``query`` then returns the
    band-mates kept so far: what ``MemoryBands`` returns for an index of the kept rows alone.
    A bucket is the exact bytes of a band; ``LSHIndex`` folds a band into a 64-bit key, so
    the two agree but for a 2^-64 chance of a key collision, which verification discards.
    """

    def __init__(
        self, sigs: np.ndarray, bands: int, rows: int, seed: int, storage: dict[str, Any]
    ) -> None:
        # Raw bytes keys (no pickling): what comes back from Redis is only parsed as an int.
        lsh = MinHashLSH(
            num_perm=sigs.shape[1], params=(bands, rows), storage_config=storage, prepickle=False
        )
        hashes = [LeanMinHash(seed=seed, hashvalues=sig, scheme="affine32") for sig in sigs]
        with lsh.insertion_session() as session:
            for i, minhash in enumerate(hashes):
                session.insert(str(i).encode(), minhash, check_duplication=False)
        self.mates: list[set[int]] = [set() for _ in hashes]
        for (lo, hi), table in zip(lsh.hashranges, lsh.hashtables, strict=True):
            # The band key datasketch stored at insert (its _H), read back for every row.
            band_keys = [lsh._H(m.hashvalues[lo:hi]) for m in hashes]
            for first in range(0, len(band_keys), _READ_BATCH):
                found = table.getmany(*band_keys[first : first + _READ_BATCH])
                for i, members in enumerate(found, start=first):
                    self.mates[i].update(int(key) for key in members)
        self.kept: set[int] = set()

    def query(self, item: int) -> set[int]:
        return self.mates[item] & self.kept

    def insert(self, item: int) -> None:
        self.kept.add(item)


IndexFactory = Callable[[np.ndarray], BandIndex]


@contextmanager
def band_indexes(
    bands: int, rows: int, seed: int, redis_url: str | None = None
) -> Iterator[IndexFactory]:
    """Yields ``new_index(sigs)``: in memory, or in Redis under a fresh key prefix.

    The Redis keys of every index made here are deleted on exit, failed runs included; a
    process killed outright leaves them under ``faqforge:lsh:<uuid>:``.
    """
    if redis_url is None:
        yield lambda sigs: MemoryBands(sigs, bands, rows)
        return
    import redis
    from redis.connection import parse_url

    params: dict[str, Any] = parse_url(redis_url)
    client = redis.Redis(**params, password=os.environ.get(REDIS_PASSWORD_ENV))
    try:
        client.ping()
    except redis.RedisError as exc:
        raise LSHStorageError(f"dedup.redis_url {redis_url}: {exc}") from exc
    prefix = f"faqforge:lsh:{uuid.uuid4().hex}:"
    # datasketch connects once per bucket table and reads the password from the variable itself.
    storage = {"type": "redis", "redis": {**params, "password": {"env": REDIS_PASSWORD_ENV}}}
    made = 0

    def new_index(sigs: np.ndarray) -> BandIndex:
        nonlocal made
        made += 1
        basename = f"{prefix}{made}".encode()
        return RedisBands(sigs, bands, rows, seed, {**storage, "basename": basename})

    try:
        yield new_index
    finally:
        stale = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for lo in range(0, len(stale), 1000):
            client.delete(*stale[lo : lo + 1000])
        client.close()


def text_signatures(
    texts: Sequence[str], shingle_words: int, num_perm: int, seed: int
) -> np.ndarray:
    """``signatures`` of each text's word shingles: ``(len(texts), num_perm)`` uint32."""
    return signatures([shingles(t, shingle_words) for t in texts], num_perm, seed)


@task(name="minhash-signatures", cache_policy=NO_CACHE, persist_result=False)
def signature_shard(shard: tuple[list[str], int, int, int]) -> np.ndarray:
    """One shard's signatures, ``(texts, shingle_words, num_perm, seed)`` in, on a worker."""
    return text_signatures(*shard)
