"""The dataset flow: ingest → chunk → generate → judge (if enabled) → curate → dedup → split →
decontaminate → validate → publish. A failed validation ends the run before publish, so
LATEST stays.

    python -m flows.refresh                    # the embedded default
    faqforge run refresh --config configs/default.yaml --set teacher.concurrency=16
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from faqforge.config import DEFAULT_CONFIG, load_run_config
from faqforge.naming import flow_run_namer
from tasks.chunk import chunk
from tasks.curate import curate
from tasks.decontaminate import decontaminate
from tasks.dedup import dedup
from tasks.generate import generate
from tasks.ingest import ingest
from tasks.judge import judge
from tasks.prepare import prepare_tokenizer
from tasks.publish import publish
from tasks.split import split
from tasks.validate import validate


@flow(name="refresh", flow_run_name=flow_run_namer("refresh"))
def refresh(
    config: str = str(DEFAULT_CONFIG),
    overrides: list[str] | None = None,
    source: str | None = None,
    workspace: str | None = None,
) -> dict[str, Any]:
    """Build, validate and publish a dataset version from the corpus; returns its summary."""
    cfg = load_run_config(config, overrides, source, workspace)
    ws = str(cfg.workspace)
    tokenizer_file = prepare_tokenizer(cfg, ws)
    documents = ingest(str(cfg.source), cfg.ingest, ws)
    chunks = chunk(documents, cfg.chunk, tokenizer_file, ws)
    generated = generate(chunks, cfg.teacher, ws)
    judged = judge(generated, chunks, cfg.teacher, ws) if cfg.teacher.judge.enabled else None
    curated = curate(judged or generated, cfg.curate, ws, chunks=chunks)
    unique = dedup(curated, cfg.dedup, ws)
    halves = split(unique, cfg.split, ws)
    clean = decontaminate(halves, cfg.decontaminate, ws)
    validation = validate(clean, cfg.validate_, ws)
    stages = [documents, chunks, generated, judged, curated, unique, halves, clean]
    return publish([s for s in stages if s is not None], validation, cfg, ws)


if __name__ == "__main__":
    refresh()
