"""No pickles: after a refresh and a tiny finetune, nothing in the workspace or in Prefect's
result store is a pickle that reading it back would execute, except the checkpoint state
files listed below, which transformers loads with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
PICKLE_HEADERS = tuple(b"\x80" + bytes([protocol]) for protocol in range(2, 6))
# Resuming needs them; transformers 5 loads each with weights_only=True (trainer.py), which
# unpickles tensors and plain containers only, never arbitrary objects.
ALLOWED_CHECKPOINT_STATE = {"optimizer.pt", "scheduler.pt", "rng_state.pth", "scaler.pt"}


def is_pickle(path: Path) -> bool:
    """A raw pickle (protocol 2-5), or ``torch.save``'s zip holding a ``data.pkl``."""
    with path.open("rb") as f:
        head = f.read(4)
    if head[:2] in PICKLE_HEADERS:
        return True
    if head == b"PK\x03\x04" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("data.pkl") for name in archive.namelist())
    return False


def test_workspace_and_prefect_results_hold_no_pickles(prefect_harness, monkeypatch, tmp_path):
    from flows.finetune import finetune_flow
    from flows.refresh import refresh

    monkeypatch.chdir(ROOT)
    corpus, ws = tmp_path / "corpus", tmp_path / "ws"
    results = ws / "prefect" / "results"  # where the refresh flow tells its stages to keep them
    corpus.mkdir()
    for path in sorted((ROOT / "faqforge" / "sample_corpus").glob("*.md"))[:3]:
        shutil.copy(path, corpus / path.name)
    train = ["finetune.max_steps=4", "finetune.save_steps=2", "finetune.eval_steps=2",
             "finetune.sample_questions=1", "finetune.max_length=128"]  # fmt: skip
    refresh("configs/tiny-llama_lora_cpu.yaml", [], str(corpus), str(ws))
    run = finetune_flow("configs/tiny-llama_lora_cpu.yaml", train, workspace=str(ws))

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    checkpoints = list(Path(run["run_dir"]).glob("trainer/checkpoint-*"))
    assert checkpoints, "the run must have written checkpoints for this test to mean anything"
    allowed = {p for p in files if p.name in ALLOWED_CHECKPOINT_STATE and p.parent in checkpoints}
    assert allowed  # the exception is exercised, not vacuous
    assert [p for p in files if p not in allowed and is_pickle(p)] == []
    assert not [p for p in files if p.name == "training_args.bin"]
    assert all((c / "training_args.json").is_file() for c in checkpoints)
    assert list(ws.rglob("*.safetensors"))  # base model and adapter weights

    stored = [p for p in results.rglob("*") if p.is_file()]
    assert stored, "persisted task results must be in the result store"
    for path in stored:
        serializer = json.loads(path.read_text())["metadata"]["serializer"]["type"]
        assert serializer == "json", path
