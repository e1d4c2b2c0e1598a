"""The refresh flow through Prefect (one test harness per session) on a small corpus."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from faqforge.storage import iter_jsonl, read_json

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "faqforge" / "sample_corpus"
QA_FIELDS = {
    "id",
    "question",
    "answer",
    "doc_id",
    "chunk_id",
    "source",
    "prompt_version",
    "teacher",
}
REJECTION_FIELDS = {"record_id", "stage", "reason"}


@pytest.fixture
def corpus(tmp_path):
    """Five sample documents plus one unreadable file that must become a rejection."""
    root = tmp_path / "corpus"
    root.mkdir()
    for path in sorted(p for p in SAMPLE.glob("*.md"))[:5]:
        shutil.copy(path, root / path.name)
    (root / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a pdf body")
    return root


@pytest.fixture
def run_refresh(prefect_harness, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)  # the config's relative paths (the GX suite) resolve from here
    from flows.refresh import refresh

    def run(corpus: Path, *overrides: str) -> dict:
        return refresh(
            config="configs/default.yaml",
            overrides=list(overrides),
            source=str(corpus),
            workspace=str(tmp_path / "ws"),
        )

    return run


def test_refresh_publishes_a_version_with_lineage_and_counts(run_refresh, corpus, tmp_path):
    summary = run_refresh(corpus)
    datasets = tmp_path / "ws" / "datasets"
    version_dir = datasets / summary["version"]
    assert (datasets / "LATEST").read_text().strip() == summary["version"]

    train = list(iter_jsonl(version_dir / "train.jsonl"))
    eval_ = list(iter_jsonl(version_dir / "eval.jsonl"))
    assert train and eval_
    for row in train + eval_:
        assert row.keys() >= QA_FIELDS
        assert (corpus / row["source"]).is_file()  # lineage back to the file
    assert not {r["doc_id"] for r in train} & {r["doc_id"] for r in eval_}  # grouped split

    rejections = list(iter_jsonl(version_dir / "rejections.jsonl"))
    assert all(r.keys() >= REJECTION_FIELDS for r in rejections)
    broken = [r for r in rejections if r["stage"] == "ingest"]
    assert [r["record_id"] for r in broken] == ["broken.pdf"]

    manifest = read_json(version_dir / "manifest.json")
    assert manifest["version"] == summary["version"]
    assert {"config_hash", "code_version", "documents", "stages", "teacher"} <= manifest.keys()
    assert set(manifest["stages"]) == {
        "ingest",
        "chunk",
        "generate",
        "curate",
        "dedup",
        "split",
        "decontaminate",
    }
    for stage, counts in manifest["stages"].items():
        assert counts["in"] == counts["out"] + sum(counts["rejected"].values()), stage
    assert manifest["stages"]["ingest"] == {"in": 6, "out": 5, "rejected": {"unreadable_pdf": 1}}
    # Pairs flow through: each pair stage reads what the previous one kept.
    s = manifest["stages"]
    assert s["curate"]["in"] == s["generate"]["produced"]
    assert s["dedup"]["in"] == s["curate"]["out"]
    assert s["split"]["in"] == s["dedup"]["out"]
    assert s["decontaminate"]["out"] == len(train) + len(eval_)  # eval passes through
    assert manifest["files"]["train.jsonl"]["rows"] == len(train)
    assert manifest["teacher"]["requests"] == s["chunk"]["produced"]
    assert manifest["teacher"]["cache_hits"] == 0


def test_second_refresh_on_unchanged_inputs_makes_no_teacher_calls(run_refresh, corpus, tmp_path):
    first = run_refresh(corpus)
    second = run_refresh(corpus)
    assert second["version"] == first["version"]  # content-derived id
    assert second["teacher"]["requests"] == 0
    assert second["teacher"]["cache_hits"] == first["teacher"]["requests"] > 0
    manifest = read_json(tmp_path / "ws" / "datasets" / second["version"] / "manifest.json")
    assert manifest["teacher"]["requests"] == 0


def test_changed_document_only_sends_its_changed_chunks(run_refresh, corpus):
    first = run_refresh(corpus)
    doc = sorted(corpus.glob("*.md"))[0]
    doc.write_text(
        doc.read_text() + "\n\n## Added later\n\nThe nightly refresh picks up new sections.\n"
    )
    second = run_refresh(corpus)
    assert second["version"] != first["version"]
    assert 1 <= second["teacher"]["requests"] <= 2  # the edited tail chunk (and its neighbour)
    assert second["teacher"]["cache_hits"] >= first["teacher"]["requests"] - 2


def test_failed_validation_blocks_publishing_and_keeps_latest(run_refresh, corpus, tmp_path):
    first = run_refresh(corpus)
    with pytest.raises(Exception, match=r"min_train_rows|expect"):
        run_refresh(corpus, "validate.min_train_rows=100000")
    latest = (tmp_path / "ws" / "datasets" / "LATEST").read_text().strip()
    assert latest == first["version"]
    assert sorted(p.name for p in (tmp_path / "ws" / "datasets").iterdir()) == sorted(
        ["LATEST", first["version"]]
    )
