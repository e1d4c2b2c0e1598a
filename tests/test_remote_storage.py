"""Storage beyond the laptop, on a file:// remote written by the real flows (test_lineage's
chain: refresh, finetune, evaluate in workspace A): what is mirrored and in which order; a
finetune in an empty workspace B that fetches the dataset and trains; an evaluate in an empty
workspace C that fetches the run and its dataset; Prefect task results on the remote. The
marker protocol and the ``RemoteFileSystem`` results block on ``memory://``."""

from __future__ import annotations

import json
from pathlib import Path

import fsspec
import pytest

from faqforge.config import StorageConfig
from faqforge.remote import (
    COMPLETE,
    NotOnRemote,
    Remote,
    RemoteError,
    fetch_dir,
    local_files,
    pull_dataset,
    push_dir,
    save_result_storage,
)
from faqforge.storage import Workspace, read_json, read_run_manifest


def remote_dir(chain) -> Path:
    return Path(chain["remote"].removeprefix("file://"))


def same_files(a: Path, b: Path, skip: tuple[str, ...] = ()) -> None:
    files = local_files(a, skip)
    assert files and files == local_files(b, skip)


@pytest.mark.slow  # the shared chain (test_lineage) costs ~1 min once
def test_flows_mirror_dataset_run_and_report_with_markers(chain):
    ws, remote = chain["ws"], remote_dir(chain)
    version, rid = chain["dataset"]["version"], chain["run"]["run_id"]
    same_files(ws / "datasets" / version, remote / "datasets" / version)
    assert (remote / "datasets" / "LATEST").read_text().strip() == version
    marker = json.loads((remote / "datasets" / version / COMPLETE).read_text())
    assert set(marker["files"]) >= {"train.jsonl", "eval.jsonl", "manifest.json", "diff.json"}

    run = remote / "runs" / rid
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    assert (run / "model_card.md").is_file() and (run / "train_metrics.json").is_file()
    assert (ws / "runs" / rid / "trainer").is_dir() and not (run / "trainer").exists()
    assert (remote / "runs" / "LATEST").read_text().strip() == rid
    same_files(ws / "runs" / rid / "eval", run / "eval")
    assert json.loads((run / "eval" / COMPLETE).read_text())["files"].keys() >= {"report.md"}


@pytest.mark.slow  # the shared chain (test_lineage) costs ~1 min once
def test_task_results_land_on_the_remote(chain):
    results = remote_dir(chain) / "prefect-results"
    stored = [p for p in results.iterdir() if p.is_file()]
    # The stages' cached results (StageOutput records, a few hundred bytes each) are there.
    assert len(stored) >= 8
    assert any(b'"stage"' in p.read_bytes() or b"chunks.jsonl" in p.read_bytes() for p in stored)


@pytest.mark.slow  # the shared chain (test_lineage) costs ~1 min once
def test_finetune_in_an_empty_workspace_trains_on_the_remote_dataset(chain, tmp_path):
    from flows.finetune import finetune_flow

    ws_b = tmp_path / "b"
    common = chain["common"] | {"workspace": str(ws_b)}
    run = finetune_flow(**common)  # no dataset given: the remote's LATEST
    version = chain["dataset"]["version"]
    assert run["dataset_version"] == version
    same_files(chain["ws"] / "datasets" / version, ws_b / "datasets" / version)
    manifest = read_run_manifest(Workspace(ws_b), ws_b / "runs" / run["run_id"])
    assert manifest.dataset_dir == str(ws_b / "datasets" / version)
    assert (Path(run["adapter_dir"]) / "adapter_model.safetensors").is_file()
    assert not (ws_b / "tmp").exists() or not any((ws_b / "tmp").iterdir())


@pytest.mark.slow  # the shared chain (test_lineage) costs ~1 min once
def test_evaluate_in_an_empty_workspace_fetches_run_and_dataset(chain, tmp_path):
    from flows.evaluate import evaluate_flow

    ws_c, rid = tmp_path / "c", chain["run"]["run_id"]
    result = evaluate_flow(run=rid, **chain["common"] | {"workspace": str(ws_c)})
    raw = read_json(ws_c / "runs" / rid / "manifest.json")
    assert raw["adapter_dir"] == f"runs/{rid}/adapter"  # workspace-relative: portable
    manifest = read_run_manifest(Workspace(ws_c), ws_c / "runs" / rid)
    assert manifest.dataset_dir == str(ws_c / "datasets" / manifest.dataset_version)
    assert manifest.adapter_dir == str(ws_c / "runs" / rid / "adapter")
    assert Path(manifest.base_model).is_relative_to(ws_c)  # rebuilt here, same seed
    assert result["report"] == str(ws_c / "runs" / rid / "eval" / "report.md")
    assert result["metrics"]["n"] == 6  # evaluate.max_items=3 per probe


@pytest.mark.slow  # the shared chain (test_lineage) costs ~1 min once
def test_a_missing_version_names_the_workspace_and_the_remote(chain, tmp_path):
    from flows.finetune import finetune_flow

    state = finetune_flow(
        dataset="ds-000000000000",
        **chain["common"] | {"workspace": str(tmp_path / "d")},
        return_state=True,
    )
    with pytest.raises(NotOnRemote, match=r"datasets/ds-000000000000: not in .* complete at "):
        state.result()


@pytest.fixture
def memory_remote(request):
    url = f"memory://faqforge-{request.node.name}"
    yield Remote.from_config(StorageConfig(remote_url=url))
    fsspec.filesystem("memory").rm(url.removeprefix("memory:/"), recursive=True)


def test_readers_take_only_complete_folders_on_memory(memory_remote, tmp_path):
    remote = memory_remote
    src = tmp_path / "src"
    (src / "adapter").mkdir(parents=True)
    (src / "manifest.json").write_text('{"version": "ds-x"}')
    (src / "adapter" / "weights.bin").write_bytes(bytes(range(256)) * 64)
    (src / "trainer").mkdir()
    (src / "trainer" / "checkpoint.bin").write_bytes(b"big")
    ws = Workspace(tmp_path / "ws")

    assert push_dir(remote, src, "runs/x", skip=("trainer",)) == 2
    assert push_dir(remote, src, "runs/x", skip=("trainer",)) == 0  # unchanged: nothing sent
    assert fetch_dir(remote, "runs/x", ws.runs / "x", ws)
    same_files(src, ws.runs / "x", skip=("trainer",))
    assert not (ws.runs / "x" / "trainer").exists()

    # Without its marker (a writer mid-way) the folder does not exist for readers.
    remote.fs.rm(remote.path(f"runs/x/{COMPLETE}"))
    assert not fetch_dir(remote, "runs/x", ws.runs / "y", ws)
    assert not (ws.runs / "y").exists()
    # A file that differs from what the marker lists is refused, nothing is left behind.
    push_dir(remote, src, "runs/x", skip=("trainer",))
    remote.fs.pipe_file(remote.path("runs/x/adapter/weights.bin"), b"half written")
    with pytest.raises(RemoteError, match=r"runs/x/adapter/weights.bin: sha256"):
        fetch_dir(remote, "runs/x", ws.runs / "z", ws)
    assert not (ws.runs / "z").exists()
    with pytest.raises(NotOnRemote, match=rf"{remote.url}/datasets/ds-none"):
        pull_dataset(remote, ws, "ds-none")


def test_stage_results_are_kept_beside_the_workspace_or_in_the_operators_block(
    prefect_harness, tmp_path
):
    from prefect.settings import PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK, temporary_settings

    from faqforge.remote import task_results

    ws = Workspace(tmp_path / "ws")
    assert task_results(ws) == ws.prefect_results
    slug = save_result_storage(StorageConfig(remote_url=f"file://{tmp_path / 'r'}"), "ws-test")
    with temporary_settings({PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK: slug}):
        assert task_results(ws).basepath == str(tmp_path / "r" / "prefect-results")


def test_task_results_on_a_remote_file_system_block(prefect_harness):
    from prefect import flow, task
    from prefect.filesystems import RemoteFileSystem
    from prefect.settings import PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK, temporary_settings

    from faqforge.remote import save_result_storage

    url = "memory://faqforge-results-test"
    slug = save_result_storage(StorageConfig(remote_url=url), "memory-test")
    assert slug == "remote-file-system/memory-test"

    @task(persist_result=True, cache_key_fn=lambda *_: "answer-key")
    def answer() -> int:
        return 42

    @flow
    def results_flow() -> int:
        return answer()

    with temporary_settings({PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK: slug}):
        assert results_flow() == 42
    block = RemoteFileSystem.load("memory-test")
    assert block.basepath == f"{url}/prefect-results"
    stored = fsspec.filesystem("memory").cat_file(
        "/faqforge-results-test/prefect-results/answer-key"
    )
    assert json.loads(stored)["result"]  # Prefect's result record, the value inside
    fsspec.filesystem("memory").rm("/faqforge-results-test", recursive=True)
