"""A refresh SIGKILLed at every stage boundary and inside generation, then re-run, publishes
the same dataset as one that was never interrupted, and LATEST never names a partial version.

Real external kills: ``faqforge run refresh`` subprocesses (``refresh_proc.py``) against the
fake OpenAI server (a teacher with a delay, so a kill can land between requests), killed by
process group the moment a stage's folder is marked finished. One workspace takes every kill
in turn, each re-run resuming from what the last one left: ten kills cost ten process starts
instead of twenty. The uninterrupted reference runs beside it in another workspace.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from testsupport.openai_server import OpenAICompatServer
from testsupport.refresh_proc import (
    LatestWatcher,
    check_published,
    dataset,
    kill_when,
    marker,
    start_refresh,
    tiny_corpus,
)

IN_FLIGHT = 2  # teacher.concurrency: at most this many answers are lost with a kill


def teacher_sets(base_url: str) -> list[str]:
    return ["teacher.kind=openai", f"teacher.base_url={base_url}", "teacher.model=tiny-teacher",
            f"teacher.concurrency={IN_FLIGHT}"]  # fmt: skip


def kill_points(ws: Path, server: OpenAICompatServer) -> list[tuple[str, Callable[[], bool]]]:
    """In pipeline order; each is false until the run being killed gets there."""
    asked = len(server.requests)

    def mid_generation() -> bool:
        return len(server.requests) >= asked + 3

    def after(path: str) -> Callable[[], bool]:
        return lambda: any(ws.glob(path))

    return [
        ("ingest", marker(ws, "ingest")),
        ("chunk", marker(ws, "chunk")),
        ("inside generate", mid_generation),
        *[(s, marker(ws, s)) for s in ("generate", "curate", "dedup", "split", "decontaminate")],
        ("validate", after("stages/validate/*/report.json")),
        ("inside publish: eval version registered", after("eval/*/meta.json")),
        ("publish", after("datasets/LATEST")),
    ]


@pytest.mark.slow
def test_killed_at_every_boundary_then_rerun_publishes_the_uninterrupted_dataset(
    prefect_api, tmp_path
):
    corpus = tiny_corpus(tmp_path / "corpus")
    with OpenAICompatServer(delay_s=0.1) as server:
        sets = teacher_sets(server.base_url)
        ws, ref_ws = tmp_path / "killed", tmp_path / "reference"
        reference = start_refresh(corpus, ref_ws, prefect_api.url, sets, tmp_path / "ref.log")
        log = tmp_path / "killed.log"
        killed = []
        with LatestWatcher(ws) as watcher:
            for name, ready in kill_points(ws, server):
                proc = start_refresh(corpus, ws, prefect_api.url, sets, log)
                if kill_when(proc, ready, timeout_s=240):
                    killed.append(name)
                assert proc.returncode in (0, -9), log.read_text()[-3000:]
                check_published(ws)  # never partial, right after each kill too
            final = start_refresh(corpus, ws, prefect_api.url, sets, log)
            assert final.wait(timeout=240) == 0, log.read_text()[-3000:]
        assert reference.wait(timeout=240) == 0, (tmp_path / "ref.log").read_text()[-3000:]

    # Every point but the last is reached before the run can end; the last may miss.
    assert killed[:-1] == [name for name, _ in kill_points(ws, server)][:-1], killed
    assert watcher.problems == [] and watcher.reads > 100
    got, want = dataset(ws), dataset(ref_ws)
    assert got["version"] == want["version"] and watcher.seen == {want["version"]}
    for name in ("train", "eval", "rejections"):
        assert got[name] == want[name], name
    ids = [r["id"] for r in got["train"] + got["eval"]]
    assert ids and not [i for i, n in Counter(ids).items() if n > 1]  # no duplicates
    assert not any((ws / "tmp").iterdir())  # no staging leftovers
    # Each workspace asked about each chunk once, plus what was in flight at the kill.
    per_chunk = Counter(r["messages"][-1]["content"] for r in server.requests)
    assert min(per_chunk.values()) == 2
    assert sum(per_chunk.values()) <= 2 * len(per_chunk) + IN_FLIGHT


def test_a_published_folder_is_durable_before_it_is_renamed(tmp_path, monkeypatch):
    """Power loss cannot be staged here: check the order instead. Every file and folder of
    the staging tree is fsynced before the rename, and the parent after it."""
    from faqforge import storage

    events: list[tuple[str, str]] = []
    real_fsync_dir, real_rename = storage._fsync_dir, storage.os.rename
    monkeypatch.setattr(
        storage, "_fsync_dir", lambda p: events.append(("fsync", p.name)) or real_fsync_dir(p)
    )
    monkeypatch.setattr(
        storage.os,
        "rename",
        lambda a, b: events.append(("rename", Path(b).name)) or real_rename(a, b),
    )
    staging = tmp_path / "tmp" / "v1"
    (staging / "data_docs").mkdir(parents=True)
    (staging / "data_docs" / "index.html").write_text("x")
    (staging / "manifest.json").write_text("{}")
    storage.publish_dir(staging, tmp_path / "datasets" / "v1")
    assert events == [
        ("fsync", "data_docs"),
        ("fsync", "v1"),
        ("rename", "v1"),
        ("fsync", "datasets"),
    ]
    assert (tmp_path / "datasets" / "v1" / "data_docs" / "index.html").read_text() == "x"
