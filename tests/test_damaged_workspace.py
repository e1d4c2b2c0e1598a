"""A damaged workspace is found by hash and rebuilt, or stopped with the command that repairs
it; it never publishes what an undamaged one would not.

One workspace is built once; each case damages a copy of it, then re-runs the refresh that
the undamaged copy runs as the reference: the two must publish the same version, byte for byte.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from faqforge.integrity import DamagedFile
from faqforge.storage import Workspace, file_hash, read_json
from tasks.publish import previous_version
from tasks.split_registry import STATE, frozen_state

LATEST = Workspace.DATASETS_LATEST

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "faqforge" / "sample_corpus"
CONFIG = "configs/tiny-llama_lora_cpu.yaml"


def refresh_in(ws: Path, corpus: Path, *overrides: str) -> dict:
    from flows.refresh import refresh

    return refresh(config=CONFIG, overrides=list(overrides), source=str(corpus),
                   workspace=str(ws))  # fmt: skip


def published(ws: Path, summary: dict) -> dict[str, str]:
    folder = ws / "datasets" / summary["version"]
    return {name: file_hash(folder / name) for name in ("train.jsonl", "eval.jsonl")}


@pytest.fixture(scope="module")
def built(prefect_harness, tmp_path_factory):
    """A corpus of five sample documents, and a workspace that published it once, kept as
    ``pristine``. Stage keys include the workspace path, so every case works at that path."""
    root = tmp_path_factory.mktemp("damage")
    corpus = root / "corpus"
    corpus.mkdir()
    for path in sorted(SAMPLE.glob("*.md"))[:5]:
        shutil.copy(path, corpus / path.name)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        summary = refresh_in(root / "ws", corpus)
    shutil.copytree(root / "ws", root / "pristine")
    return root, corpus, summary


@pytest.fixture
def ws(built, monkeypatch) -> Path:
    """The built workspace, as it was after its first refresh."""
    monkeypatch.chdir(ROOT)
    root = built[0]
    restore(root)
    return root / "ws"


def restore(root: Path) -> None:
    shutil.rmtree(root / "ws", ignore_errors=True)
    shutil.copytree(root / "pristine", root / "ws")


def reference(root: Path, corpus: Path, *overrides: str) -> dict[str, str]:
    """What the undamaged workspace publishes with ``overrides``; the workspace is restored."""
    summary = refresh_in(root / "ws", corpus, *overrides)
    files = published(root / "ws", summary)
    restore(root)
    return {"version": summary["version"], **files}


def used(ws: Path, stage: str, summary: dict) -> Path:
    """The stage folder the published version was built from."""
    manifest = read_json(ws / "datasets" / summary["version"] / "manifest.json")
    return ws / "stages" / stage / manifest["stage_outputs"][stage]["key"]


def cut(path: Path, lines: int) -> None:
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:lines]))


@pytest.mark.slow
def test_a_stage_folder_without_success_is_rebuilt_not_read(built, ws):
    """Case 1: curate's marker deleted and its pairs cut to 3, then dedup re-runs on them."""
    root, corpus, summary = built
    sets = ("dedup.threshold=0.7", "validate.max_removed_share=1.0")
    expected = reference(root, corpus, *sets)
    folder = used(ws, "curate", summary)
    (folder / "_SUCCESS").unlink()
    cut(folder / "pairs.jsonl", 3)
    got = refresh_in(ws, corpus, *sets)
    assert {"version": got["version"], **published(ws, got)} == expected
    assert got["train"] > 3 and (folder / "_SUCCESS").is_file()  # rebuilt in place


@pytest.mark.slow
def test_a_stage_file_that_fails_its_hash_is_rebuilt(built, ws):
    """Case 2: split's train.jsonl cut while its marker stays; decontaminate re-runs on it,
    and with datasets/ removed the same version id must come back whole."""
    root, corpus, summary = built
    sets = ("decontaminate.question_threshold=0.9",)
    expected = reference(root, corpus, *sets)
    train = used(ws, "split", summary) / "train.jsonl"
    cut(train, 5)
    got = refresh_in(ws, corpus, *sets)
    assert {"version": got["version"], **published(ws, got)} == expected
    restore(root)
    cut(train, 5)
    shutil.rmtree(ws / "datasets")
    again = refresh_in(ws, corpus)
    assert again["version"] == summary["version"] and again["train"] == summary["train"]
    assert published(ws, again) == published(root / "pristine", summary)


@pytest.mark.slow
def test_a_latest_naming_a_missing_version_stops_and_repair_restores_the_guard(built, ws):
    """Case 3: with LATEST unreadable the guard against large drops was off, and a corpus
    shrunk to one file published. Now the run stops naming LATEST; after the documented
    repair the guard blocks the drop."""
    from typer.testing import CliRunner

    from faqforge.cli import app
    from tasks.validate import DatasetValidationError

    root, corpus, summary = built
    (ws / LATEST).write_text("ds-000000000000\n")
    one = root / "one"
    one.mkdir(exist_ok=True)
    shutil.copy(sorted(corpus.iterdir())[0], one)
    with pytest.raises(DamagedFile) as info:
        refresh_in(ws, one, "validate.max_removed_share=0.2")
    assert info.value.path == ws / LATEST and "ds-000000000000" in str(info.value)
    assert "faqforge datasets repair" in str(info.value)
    result = CliRunner().invoke(app, ["datasets", "repair", "--workspace", str(ws)])
    assert result.exit_code == 0, result.output
    assert (ws / LATEST).read_text().strip() == summary["version"]
    # Frozen eval items are carried whatever the corpus holds, so the share removed here is
    # under the default 0.5; a tighter bound shows the guard is on again.
    with pytest.raises(DatasetValidationError, match="removed_share"):
        refresh_in(ws, one, "validate.max_removed_share=0.2")


@pytest.mark.slow
def test_a_truncated_frozen_eval_file_stops_the_refresh(built, ws):
    """Case 4: the frozen eval split would have shrunk from its items to one."""
    _, corpus, _ = built
    version = read_json(ws / STATE)["version"]
    items = ws / "eval" / version / "eval.jsonl"
    cut(items, 1)
    with pytest.raises(DamagedFile) as info:
        refresh_in(ws, corpus, "dedup.threshold=0.7")
    assert info.value.path == items and "frozen eval split would change" in str(info.value)


@pytest.mark.slow
def test_finetune_refuses_a_published_file_that_differs_from_its_manifest(built, ws):
    """Case 5: a train.jsonl cut to 5 rows was trained on under the original hash."""
    from flows.finetune import dataset_dir

    _, _, summary = built
    cut(ws / "datasets" / summary["version"] / "train.jsonl", 5)
    with pytest.raises(DamagedFile, match="differs from the sha256 its manifest records"):
        dataset_dir(Workspace(ws), Workspace(ws).resolve_dataset(None))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        (LATEST, b"\xff\xfe\x00garbage", "not UTF-8 text"),
        (LATEST, b"two words\n", "does not hold an id"),
        (STATE, b"", "not JSON"),
        (STATE, b"[]", "not a JSON object"),
        (STATE, b'{"version": "ev-1"}', "lacks train_docs"),
    ],
)
def test_a_damaged_pointer_or_state_names_its_file_and_the_repair(ws, name, content, problem):
    from faqforge.workspace_repair import repair_workspace

    home = Workspace(ws)
    (ws / name).write_bytes(content)
    with pytest.raises(DamagedFile) as info:
        previous_version(home) if name == LATEST else frozen_state(home)
    assert info.value.path == ws / name and problem in str(info.value)
    assert f"faqforge datasets repair --workspace {ws}" in str(info.value)
    report = repair_workspace(home)
    assert previous_version(home) == report.latest and frozen_state(home) is not None


@pytest.mark.slow
def test_a_damaged_eval_meta_is_rewritten_by_repair_and_lost_items_are_named(ws):
    from faqforge.workspace_repair import repair_workspace

    home = Workspace(ws)
    version = read_json(ws / STATE)["version"]
    meta = ws / "eval" / version / "meta.json"
    meta.write_bytes(meta.read_bytes()[:40])
    with pytest.raises(DamagedFile) as info:
        frozen_state(home)
    assert info.value.path == meta and "faqforge datasets repair" in str(info.value)
    report = repair_workspace(home)
    assert any(str(meta) in action for action in report.actions)
    assert frozen_state(home)["version"] == version and read_json(meta)["repaired"] is True
    cut(ws / "eval" / version / "eval.jsonl", 1)  # items lost: only a restore or --new-eval
    with pytest.raises(DamagedFile, match="--new-eval"):
        frozen_state(home)
