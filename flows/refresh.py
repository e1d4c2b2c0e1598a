"""The dataset flow: ingest → chunk → generate → judge (if enabled) → curate → dedup → split →
decontaminate → validate → publish. A failed validation ends the run before publish, so
LATEST stays.

    python -m flows.refresh                    # the embedded default
    faqforge run refresh --config configs/default.yaml --set teacher.concurrency=16
    faqforge run refresh --new-eval            # re-draw the frozen eval split
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from faqforge.config import DEFAULT_CONFIG, load_run_config
from faqforge.naming import flow_run_namer
from faqforge.storage import Workspace
from tasks.chunk import chunk
from tasks.curate import curate
from tasks.decontaminate import decontaminate
from tasks.dedup import dedup
from tasks.eval_registry import frozen_state
from tasks.generate import generate
from tasks.ingest import ingest
from tasks.judge import judge
from tasks.prepare import prepare_tokenizer
from tasks.publish import previous_version, publish
from tasks.references import reference_set
from tasks.split import split
from tasks.validate import validate


@flow(name="refresh", flow_run_name=flow_run_namer("refresh"))
def refresh(
    config: str = str(DEFAULT_CONFIG),
    overrides: list[str] | None = None,
    source: str | None = None,
    workspace: str | None = None,
    new_eval: bool = False,
) -> dict[str, Any]:
    """Build, validate and publish a dataset version from the corpus; returns its summary.

    The published eval split stays frozen across refreshes; ``new_eval`` draws a new one.
    """
    cfg = load_run_config(config, overrides, source, workspace)
    ws = str(cfg.workspace)
    home = Workspace(cfg.workspace)
    frozen, previous = frozen_state(home, new_eval), previous_version(home)
    references = reference_set(home, cfg.decontaminate)
    tokenizer_file = prepare_tokenizer(cfg, ws)
    documents = ingest(str(cfg.source), cfg.ingest, ws)
    chunks = chunk(documents, cfg.chunk, tokenizer_file, ws)
    generated = generate(chunks, cfg.teacher, ws)
    judged = judge(generated, chunks, cfg.teacher, ws) if cfg.teacher.judge.enabled else None
    curated = curate(judged or generated, cfg.curate, ws, chunks=chunks)
    unique = dedup(curated, cfg.dedup, ws)
    halves = split(unique, cfg.split, ws, frozen)
    clean = decontaminate(halves, cfg.decontaminate, ws, references)
    validation = validate(clean, cfg.validate_, ws, previous)
    stages = [documents, chunks, generated, judged, curated, unique, halves, clean]
    return publish([s for s in stages if s is not None], validation, cfg, ws, previous)


if __name__ == "__main__":
    refresh()
