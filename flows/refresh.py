"""The dataset flow: ingest → chunk → generate → judge (if enabled) → curate → dedup → split →
decontaminate → validate → publish. A failed validation ends the run before publish, so
LATEST stays.

    python -m flows.refresh                    # the embedded default
    faqforge run refresh --config configs/default.yaml --set teacher.concurrency=16
    faqforge run refresh --new-eval            # re-draw the frozen eval split
"""

from __future__ import annotations

from prefect import flow

from faqforge.config import DEFAULT_CONFIG, load_run_config
from faqforge.events import DATASET_PUBLISHED, announce
from faqforge.lineage import record_dataset
from faqforge.locking import workspace_lock
from faqforge.naming import flow_run_namer
from faqforge.notify import notify_failure
from faqforge.remote import mirror_dataset, task_results
from faqforge.runtime import prepare_environment
from faqforge.storage import Workspace
from tasks.chunk import chunk
from tasks.curate import curate
from tasks.decontaminate import decontaminate
from tasks.dedup import dedup
from tasks.explain import stop_if_empty
from tasks.generate import generate
from tasks.ingest import ingest
from tasks.judge import judge
from tasks.prepare import prepare_tokenizer
from tasks.publish import Published, previous_version, publish
from tasks.references import reference_set
from tasks.split import split
from tasks.split_registry import frozen_state
from tasks.validate import validate


@flow(name="refresh", flow_run_name=flow_run_namer("refresh"), on_failure=[notify_failure])
def refresh(
    config: str = str(DEFAULT_CONFIG),
    overrides: list[str] | None = None,
    source: str | None = None,
    workspace: str | None = None,
    new_eval: bool = False,
    force_regenerate: bool = False,
) -> Published:
    """Build, validate and publish a dataset version from the corpus; returns its summary.

    Args:
        config: Pipeline YAML file (relative to the checkout), e.g. configs/default.yaml.
        overrides: Config fields to override, each "key.path=value", e.g.
            "teacher.concurrency=4".
        source: Corpus folder; empty keeps the config's `source`.
        workspace: Workspace folder; empty keeps the config's `workspace`.
        new_eval: Draw a new eval split instead of keeping the published (frozen) one;
            scores are then not comparable with earlier runs.
        force_regenerate: Ask the teacher (and judge) again for every chunk, replacing
            the cached replies: for after a bad teacher night.
    """
    prepare_environment()
    cfg = load_run_config(config, overrides, source, workspace)
    # One refresh per workspace at a time: stage folders, LATEST and the eval state are shared.
    with workspace_lock(cfg.workspace, "refresh", cfg.lock_timeout_s):
        ws = str(cfg.workspace)
        home = Workspace(cfg.workspace)
        frozen, previous = frozen_state(home, new_eval), previous_version(home)
        references = reference_set(home, cfg.decontaminate)
        tokenizer_file = prepare_tokenizer(cfg, ws)
        # The stages whose results Prefect keeps, told where (never through the environment).
        store = task_results(home)
        chunk_ = chunk.with_options(result_storage=store)
        curate_ = curate.with_options(result_storage=store)
        dedup_ = dedup.with_options(result_storage=store)
        split_ = split.with_options(result_storage=store)
        decontaminate_ = decontaminate.with_options(result_storage=store)
        # Each stage that leaves nothing stops the run there, with its counts and reasons.
        documents = stop_if_empty(ingest(str(cfg.source), cfg.ingest, ws), str(cfg.source))
        chunks = stop_if_empty(chunk_(documents, cfg.chunk, tokenizer_file, ws))
        generated = stop_if_empty(generate(chunks, cfg.teacher, ws, force_regenerate))
        judged = (
            stop_if_empty(judge(generated, chunks, cfg.teacher, ws, force_regenerate))
            if cfg.teacher.judge.enabled
            else None
        )
        curated = stop_if_empty(
            curate_(judged or generated, cfg.curate, ws, chunks, cfg.teacher.max_answer_words)
        )
        unique = stop_if_empty(dedup_(curated, cfg.dedup, ws, runner=cfg.runner,
                                     teacher=cfg.teacher))  # fmt: skip
        halves = split_(unique, cfg.split, ws, frozen)
        clean = decontaminate_(halves, cfg.decontaminate, ws, references)
        stages = [documents, chunks, generated, judged, curated, unique, halves, clean]
        counts = {s.stage: s.counts.as_dict() for s in stages if s is not None}
        validation = validate(clean, cfg.validate_, ws, previous, counts)
        summary = publish([s for s in stages if s is not None], validation, cfg, ws, previous)
        mirror_dataset(summary["version"], cfg.storage, ws)
        record_dataset(summary, cfg)
        run = {"config": config, "overrides": overrides or [], "workspace": ws}
        announce(DATASET_PUBLISHED, summary["version"], run)
        return summary


if __name__ == "__main__":
    refresh()
