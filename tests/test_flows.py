"""The refresh flow through Prefect (one test harness per session) on a small corpus."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from faqforge.config import SplitConfig
from faqforge.storage import iter_jsonl, read_json
from tasks.split import position
from testsupport.prefect_reads import run_artifacts

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

    def run(corpus: Path, *overrides: str, **params) -> dict:
        return refresh(
            config="configs/tiny-llama_lora_cpu.yaml",
            overrides=list(overrides),
            source=str(corpus),
            workspace=str(tmp_path / "ws"),
            **params,
        )

    return run


def test_importing_the_flows_changes_no_environment():
    """Before, ``import flows`` set Prefect and Hugging Face variables as a side effect."""
    set_by_runtime = ("PREFECT_SERVER_ANALYTICS_ENABLED", "DO_NOT_TRACK", "HF_HUB_OFFLINE",
                      "TRANSFORMERS_OFFLINE", "PREFECT_RESULTS_DEFAULT_SERIALIZER")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in set_by_runtime}
    code = ("import os; before = dict(os.environ); "
            "import flows.pipeline, flows.refresh, flows.finetune, flows.evaluate; "
            "print(sorted(set(os.environ.items()) ^ set(before.items())))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True, timeout=120).stdout  # fmt: skip
    assert out.strip() == "[]"


@pytest.mark.slow  # two whole refresh flows
def test_each_workspace_keeps_its_own_results_and_env_overrides_are_recorded(
    run_refresh, corpus, tmp_path, monkeypatch
):
    """Two workspaces in one process: each keeps its stage tasks' Prefect results (before,
    the first workspace a process saw won), and a FAQFORGE__ variable shows in the manifest."""
    from flows.refresh import refresh

    monkeypatch.setenv("FAQFORGE__LOCK_TIMEOUT_S", "1")
    first = run_refresh(corpus)
    other = tmp_path / "other"
    second = refresh(config="configs/tiny-llama_lora_cpu.yaml", source=str(corpus),
                     workspace=str(other))  # fmt: skip
    for ws, summary in ((tmp_path / "ws", first), (other, second)):
        assert len(list((ws / "prefect" / "results").iterdir())) >= 5  # chunk … decontaminate
        manifest = read_json(ws / "datasets" / summary["version"] / "manifest.json")
        assert manifest["env_overrides"] == {"lock_timeout_s": 1}


@pytest.mark.slow  # the whole refresh flow
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
    unseen = [r for r in eval_ if r["probe"] == "unseen_documents"]
    knowledge = [r for r in eval_ if r["probe"] == "knowledge"]
    assert not {r["doc_id"] for r in train} & {r["doc_id"] for r in unseen}  # held out whole
    # Held-out phrasings of trained facts: each taught by pairs of its fact still in train.
    train_by_id = {r["id"]: r for r in train}
    assert knowledge and all(r["taught_by"] for r in knowledge)
    for item in knowledge:
        assert {train_by_id[t]["fact_id"] for t in item["taught_by"]} == {item["fact_id"]}
        assert item["id"] not in train_by_id

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
    assert s["split"]["in"] == s["dedup"]["out"] + manifest["eval"]["carried"]
    assert s["decontaminate"]["out"] == len(train) + len(eval_)  # eval passes through
    assert manifest["files"]["train.jsonl"]["rows"] == len(train)
    # The first eval split is drawn afresh and registered; the diff is against nothing.
    assert manifest["eval"]["parent"] is None and manifest["eval"]["items"] == len(eval_)
    probes = manifest["eval"]["probes"]
    assert (probes["knowledge"]["items"], probes["unseen_documents"]["items"]) == (
        len(knowledge), len(unseen),
    )  # fmt: skip
    assert "question-level only" in probes["knowledge"]["decontamination"]
    registered = tmp_path / "ws" / "eval" / manifest["eval"]["version"] / "eval.jsonl"
    assert list(iter_jsonl(registered)) == eval_
    assert read_json(version_dir / "diff.json")["added_share"] is None
    assert manifest["teacher"]["requests"] == s["chunk"]["produced"]
    assert manifest["teacher"]["cache_hits"] == 0


@pytest.mark.slow  # the whole refresh flow
def test_second_refresh_on_unchanged_inputs_makes_no_teacher_calls(run_refresh, corpus, tmp_path):
    first = run_refresh(corpus)
    second = run_refresh(corpus)
    assert second["version"] == first["version"]  # content-derived id
    assert second["teacher"]["requests"] == 0
    assert second["teacher"]["cache_hits"] == first["teacher"]["requests"] > 0
    manifest = read_json(tmp_path / "ws" / "datasets" / second["version"] / "manifest.json")
    assert manifest["teacher"]["requests"] == 0


@pytest.mark.slow  # the whole refresh flow
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


@pytest.mark.slow  # the whole refresh flow
def test_failed_validation_blocks_publishing_and_keeps_latest(run_refresh, corpus, tmp_path):
    first = run_refresh(corpus)
    state = run_refresh(corpus, "validate.min_train_rows=100000", return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match=r"expect_column_values_to_be_between on train_rows"):
        state.result()
    latest = (tmp_path / "ws" / "datasets" / "LATEST").read_text().strip()
    assert latest == first["version"]
    assert sorted(p.name for p in (tmp_path / "ws" / "datasets").iterdir()) == sorted(
        ["LATEST", first["version"]]
    )
    # The failing expectations are listed in an artifact of the failed run, with Data Docs.
    (artifact,) = run_artifacts(
        state.state_details.flow_run_id, "dataset-validation", tmp_path / "ws"
    )
    assert "FAILED" in artifact.data
    assert "| qa_dataset_summary | expect_column_values_to_be_between | train_rows |" in (
        artifact.data
    )
    # The Data Docs path, workspace-relative (a file:// link does nothing in the UI).
    (docs_path,) = re.findall(r"Data Docs: `(stages/validate/\S+/data_docs/index\.html)`",
                              artifact.data)  # fmt: skip
    assert (tmp_path / "ws" / docs_path).is_file()
    # The eval registry did not move either.
    state_file = read_json(tmp_path / "ws" / "eval" / "STATE.json")
    assert state_file["version"] == first["eval_version"]


@pytest.mark.slow
def test_collapsed_refresh_is_not_published(run_refresh, corpus, tmp_path):
    first = run_refresh(corpus)
    for doc in sorted(corpus.glob("*.md"))[1:]:  # four of five documents vanish
        doc.unlink()
    # Frozen eval items stay, so the share removed is that of the train documents that left
    # (≥ 1 of 5): over a bound of 0.1 whichever documents hold the eval split.
    with pytest.raises(Exception, match="removed_share"):
        run_refresh(corpus, "validate.max_removed_share=0.1")
    assert (tmp_path / "ws" / "datasets" / "LATEST").read_text().strip() == first["version"]
    # Deliberately shrinking the corpus is allowed with a raised bound.
    shrunk = run_refresh(corpus, "validate.max_removed_share=1.0")
    diff = read_json(tmp_path / "ws" / "datasets" / shrunk["version"] / "diff.json")
    assert diff["removed_share"] > 0.1 and diff["removed"]


def _rows(tmp_path, version: str, name: str) -> list[dict]:
    return list(iter_jsonl(tmp_path / "ws" / "datasets" / version / f"{name}.jsonl"))


@pytest.mark.slow
def test_eval_split_stays_frozen_across_refreshes(run_refresh, corpus, tmp_path):
    first = run_refresh(corpus)
    eval1, train1 = (
        _rows(tmp_path, first["version"], "eval"),
        _rows(tmp_path, first["version"], "train"),
    )
    # One held-out document leaves, a new document arrives; a changed eval config moves nothing.
    gone = next(r["source"] for r in eval1 if r["probe"] == "unseen_documents")
    (corpus / gone).unlink()
    (corpus / "zz-new.md").write_text(
        "# Release notes\n\nThe refresh flow keeps the eval split frozen across runs, and new "
        "documents are placed by a stable hash rule.\n"
    )
    second = run_refresh(corpus, "split.eval_fraction=0.9")
    eval2, train2 = (
        _rows(tmp_path, second["version"], "eval"),
        _rows(tmp_path, second["version"], "train"),
    )
    assert eval2[: len(eval1)] == eval1  # every frozen item, the gone document's included
    assert {r["doc_id"] for r in train1} <= {r["doc_id"] for r in train2}  # no train doc moved
    manifest = read_json(tmp_path / "ws" / "datasets" / second["version"] / "manifest.json")
    assert manifest["eval"]["carried"] == sum(r["source"] == gone for r in eval1) > 0
    assert manifest["eval"]["parent"] == first["eval_version"]
    # The new document alone follows the hash rule (with the changed fraction).
    unseen2 = [r for r in eval2 if r["probe"] == "unseen_documents"]
    (new_doc,) = {(r["doc_id"], side) for side, rows in (("train", train2), ("eval", unseen2))
                  for r in rows if r["source"] == "zz-new.md"}  # fmt: skip
    assert new_doc[1] == ("eval" if position(new_doc[0], SplitConfig().salt) < 0.9 else "train")

    # --new-eval redraws. The gone document returns, under a salt that puts it in train: its
    # pairs equal its old eval items, which every registered eval version keeps out of train.
    shutil.copy(SAMPLE / gone, corpus / gone)
    gone_id = next(r["doc_id"] for r in eval1 if r["source"] == gone)
    doc_ids = {r["doc_id"] for r in train2 + eval2}

    def puts_gone_in_train(salt: str) -> bool:
        lowest = min(doc_ids, key=lambda d: position(d, salt))  # forced to eval if alone
        return position(gone_id, salt) >= 0.2 and lowest != gone_id

    salt = next(s for s in (f"redraw-{i}" for i in range(200)) if puts_gone_in_train(s))
    third = run_refresh(corpus, f"split.salt={salt}", new_eval=True)
    manifest = read_json(tmp_path / "ws" / "datasets" / third["version"] / "manifest.json")
    assert manifest["eval"]["parent"] is None
    assert {first["eval_version"], second["eval_version"]} <= set(manifest["eval"]["all_versions"])
    eval3 = _rows(tmp_path, third["version"], "eval")
    assert gone_id not in {r["doc_id"] for r in eval3 if r["probe"] == "unseen_documents"}
    train3 = _rows(tmp_path, third["version"], "train")
    assert not {r["id"] for r in eval1} & {r["id"] for r in train3}
    # Its facts' answers are the old held-out items' answers: every training pair of it leaks.
    assert gone_id not in {r["doc_id"] for r in train3}
    leaks = [r for r in _rows(tmp_path, third["version"], "rejections")
             if r["stage"] == "decontaminate" and r["record"]["doc_id"] == gone_id]  # fmt: skip
    assert len(leaks) >= sum(r["doc_id"] == gone_id for r in eval1) > 0
    assert all(r["record"]["eval_source"] == f"eval:{first['eval_version']}" for r in leaks)


@pytest.mark.slow  # the whole refresh flow
def test_a_refresh_stops_at_the_stage_that_leaves_nothing(run_refresh, corpus, tmp_path):
    """An empty corpus, a corpus of bad files and a curate that rejects every pair each stop
    at that stage, naming its counts and reasons, before any later stage runs."""
    from tasks.explain import NothingLeft

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NothingLeft, match=f"ingest found no files to read under {empty}"):
        run_refresh(empty)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.html").write_bytes(b"%PDF-1.7\n1 0 obj\n")
    (bad / "b.md").write_text("   \n")
    with pytest.raises(NothingLeft) as info:
        run_refresh(bad)
    assert "ingest left 0 documents of 2 in; rejected: empty 1, wrong_type 1" in str(info.value)
    with pytest.raises(NothingLeft) as info:
        run_refresh(corpus, "curate.min_answer_words=500")
    assert str(info.value).startswith("curate left 0 pairs of ")
    assert "rejected: answer_too_short" in str(info.value)
    assert not (tmp_path / "ws" / "stages" / "dedup").exists()  # stopped at curate
