"""Resource ceilings end a stage cleanly with a report: chunks per run, teacher tokens,
training time, and the GPU slot a training run holds."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

import tasks.finetune as ft
from faqforge.artifacts import artifact_key
from faqforge.config import ChunkConfig, FinetuneConfig, TeacherConfig
from faqforge.records import Document
from faqforge.stage import StageCounts, save_output
from faqforge.storage import Workspace, read_json, sha256_text
from faqforge.tiny_llama import build_tokenizer
from tasks.chunk import chunk, chunk_documents, load_tokenizer
from tasks.generate import generate
from testsupport.openai_server import OpenAICompatServer
from testsupport.planted import publish_planted, tiny_model
from testsupport.teaching import chunk_stage, make_chunk

# A training run as short as it can be: no sample answers, no evaluation during training.
TINY_TRAIN = {"max_length": 64, "sample_questions": 0, "eval_steps": 10_000}


def doc(i: int, paragraphs: int, sentences: int = 30) -> Document:
    text = "\n\n".join(f"Paragraph {p} of document {i}. " * sentences for p in range(paragraphs))
    return Document(doc_id=f"d{i}", source=f"doc{i}.md", format="md", title=f"Doc {i}",
                    text=text, content_hash=sha256_text(text))  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory) -> str:
    return str(build_tokenizer(tmp_path_factory.mktemp("tok")))


def test_chunk_ceiling_rejects_the_remaining_documents_whole(tokenizer_file):
    docs = [doc(i, paragraphs=3) for i in range(5)]
    tokenizer = load_tokenizer(tokenizer_file)
    per_doc = len(chunk_documents(docs[:1], tokenizer, ChunkConfig())[0])
    assert per_doc >= 2
    # Room for two documents and part of a third: the third is not cut short.
    cfg = ChunkConfig(max_chunks=2 * per_doc + 1)
    chunks, rejections = chunk_documents(docs, tokenizer, cfg)
    assert {c.doc_id for c in chunks} == {"d0", "d1"} and len(chunks) == 2 * per_doc
    assert [(r.record_id, r.reason) for r in rejections] == [
        ("d2", "chunk_limit"), ("d3", "chunk_limit"), ("d4", "chunk_limit")]  # fmt: skip
    assert rejections[0].detail == (
        f"doc2.md: not chunked, chunk.max_chunks={2 * per_doc + 1} reached after "
        f"{2 * per_doc} chunks; raise it or split the corpus"
    )


def test_chunk_task_at_the_ceiling_reports_counts_warning_and_artifact(
    prefect_harness, tokenizer_file, tmp_path, caplog
):
    from prefect import flow
    from prefect.artifacts import Artifact

    docs = [doc(i, paragraphs=1, sentences=3) for i in range(4)]  # one chunk each
    ws = Workspace(tmp_path)
    counts = StageCounts.of(len(docs), len(docs), [])
    documents = save_output(ws, "ingest", "k-limit", {"documents": docs}, counts)
    cfg = ChunkConfig(max_chunks=3)

    with caplog.at_level(logging.WARNING, logger="tasks.chunk"):
        out = chunk.fn(documents, cfg, tokenizer_file, str(tmp_path))
    assert out.counts.as_dict() == {"in": 4, "out": 3, "rejected": {"chunk_limit": 1},
                                    "produced": 3}  # fmt: skip
    assert out.stats["docs_over_chunk_limit"] == 1
    assert "chunk.max_chunks=3 reached: 1 of 4 documents not chunked" in caplog.text

    @flow
    def chunk_only():  # a fresh workspace, so the task runs and reports in the flow run
        return chunk(documents, cfg, tokenizer_file, str(tmp_path / "ws2"))

    chunk_only()
    table = str(Artifact.get(artifact_key("chunk-counts", Workspace(tmp_path / "ws2"))).data)
    assert "rejected: chunk_limit" in table and "docs_over_chunk_limit" in table


def test_token_budget_ends_generate_with_a_report_of_what_was_left(tmp_path):
    chunks = chunk_stage(Workspace(tmp_path), [make_chunk(i) for i in range(6)])
    with OpenAICompatServer() as server:
        cfg = TeacherConfig(kind="openai", base_url=server.base_url, model="tiny-teacher",
                            concurrency=1, token_budget=200)  # fmt: skip
        out = generate.fn(chunks, cfg, str(tmp_path))
        sent = len(server.requests)
    assert 0 < sent < 6  # stopped sending once the budget was spent, and did not fail
    left = out.counts.rejected["budget_exhausted"]
    assert left == 6 - sent == out.stats["left"] == out.stats["ledger"]["left"]
    assert out.counts.in_ == out.counts.out + sum(out.counts.rejected.values())
    assert out.stats["ledger"]["prompt_tokens"] + out.stats["ledger"]["completion_tokens"] >= 200


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, str]:
    dataset = publish_planted(tmp_path_factory.mktemp("limits") / "ds")
    return dataset, str(tiny_model(tmp_path_factory))


@pytest.mark.slow  # trains
def test_training_time_ceiling_stops_saves_the_adapter_and_says_so(planted, tmp_path):
    dataset, base = planted
    cfg = FinetuneConfig(base_model=base, max_steps=100_000, max_train_seconds=3,
                         **TINY_TRAIN)  # fmt: skip
    summary = ft.train_run(dataset, cfg, Workspace(tmp_path))
    metrics, run_dir = summary["metrics"], Path(summary["run_dir"])
    assert metrics["stopped"] == "time_limit"
    assert 0 < metrics["steps"] < 100_000 and metrics["runtime_s"] < 60
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert (run_dir / "adapter" / Workspace.SUCCESS).is_file()
    assert read_json(run_dir / "train_metrics.json")["stopped"] == "time_limit"
    assert "| stopped | time_limit |" in (run_dir / "model_card.md").read_text()


@pytest.mark.slow  # trains
def test_training_without_a_ceiling_completes(planted, tmp_path):
    dataset, base = planted
    cfg = FinetuneConfig(base_model=base, max_steps=3, max_train_seconds=600, **TINY_TRAIN)
    assert ft.train_run(dataset, cfg, Workspace(tmp_path))["metrics"]["stopped"] == "completed"


@pytest.mark.slow  # trains
def test_training_holds_the_gpu_concurrency_slot(prefect_harness, planted, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name="gpu", limit=1))
    dataset, base = planted
    cfg = FinetuneConfig(base_model=base, max_steps=4, gpu_concurrency_limit="gpu", **TINY_TRAIN)

    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:  # what another deployment would see while this one trains
        with get_client(sync_client=True) as client:
            while not done.is_set():
                seen.append(client.read_global_concurrency_limit_by_name("gpu").active_slots)
                done.wait(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        ft.train_run(dataset, cfg, Workspace(tmp_path))
    finally:
        done.set()
        watcher.join()
    assert max(seen) == 1  # held during training...
    with get_client(sync_client=True) as client:  # ...and released after
        assert client.read_global_concurrency_limit_by_name("gpu").active_slots == 0

    missing = cfg.model_copy(update={"gpu_concurrency_limit": "no-such-gpu", "max_steps": 2})
    with pytest.raises(Exception, match="no-such-gpu"):
        ft.train_run(dataset, missing, Workspace(tmp_path))
