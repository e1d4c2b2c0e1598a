"""Make the student's tokenizer available before chunking (built locally for the tiny model)."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from faqforge.config import PipelineConfig
from faqforge.models import resolve_tokenizer_file
from faqforge.storage import Workspace


@task(name="prepare-tokenizer")
def prepare_tokenizer(cfg: PipelineConfig, workspace: str) -> str:
    """Path of the tokenizer.json that chunk sizes are measured with."""
    return str(resolve_tokenizer_file(cfg, Workspace(Path(workspace))))
