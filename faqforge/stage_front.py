"""``faqforge stage ingest|chunk|generate``: the first three steps alone, on files.

Each writes its records (documents, chunks, QA pairs) as JSONL to ``--output`` and its
rejections beside it (``<output>.rejections.jsonl``), then prints the counts, so a user can
run one step, read what it made and feed it to the next::

    faqforge stage ingest --source docs/ -o docs.jsonl
    faqforge stage chunk -i docs.jsonl -o chunks.jsonl
    faqforge stage generate -i chunks.jsonl -o pairs.jsonl   # then: stage curate -i pairs.jsonl

The same functions as the flow, no Prefect run. Generate asks the configured teacher and
caches each reply in the config's workspace (``cache/teacher/``), as the flow does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from faqforge.records import Chunk, Document, Rejection
from faqforge.stage_cli import (
    ConfigOpt,
    InputOpt,
    OutputOpt,
    SetOpt,
    check_outputs,
    fail_usage,
    load_stage_config,
    stage_app,
)
from faqforge.storage import R, Workspace, read_records, write_jsonl


def read_input(path: Path, output: Path, cls: type[R]) -> list[R]:
    """The records of ``--input``, once ``--output`` is known not to overwrite it; a file that
    is not this stage's input stops with exit 2."""
    check_outputs(output, path)
    if not path.is_file():
        fail_usage(f"--input {path}: no such file")
    try:
        return read_records(path, cls)
    except (ValueError, KeyError, TypeError) as exc:
        fail_usage(f"--input {path}: not {cls.__name__} records ({type(exc).__name__}: {exc}); "
                   "it should be the previous stage's --output")  # fmt: skip
        raise AssertionError from exc  # fail_usage exits


def write_outputs(stage: str, output: Path, made: list[Any], rejections: list[Rejection]) -> None:
    rejected_path = output.with_name(output.name + ".rejections.jsonl")
    write_jsonl(output, made)
    write_jsonl(rejected_path, rejections)
    reasons: dict[str, int] = {}
    for r in rejections:
        reasons[r.reason] = reasons.get(r.reason, 0) + 1
    why = ", ".join(f"{k} {n}" for k, n in sorted(reasons.items()))
    typer.echo(f"{stage}: {len(made)} made, {len(rejections)} rejected{f' ({why})' if why else ''}"
               f"\n  output: {output}\n  rejections: {rejected_path}")  # fmt: skip


@stage_app.command("ingest")
def stage_ingest(
    source: Annotated[Path, typer.Option("--source", help="corpus folder", metavar="DIR")],
    output: OutputOpt,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Read a corpus folder into documents (text, title, content hash), one per line."""
    cfg = load_stage_config(config, set_)
    if not source.is_dir():
        fail_usage(f"--source {source}: not a folder")
    from tasks.ingest import ingest_corpus

    docs, rejections = ingest_corpus(source, cfg.ingest)
    write_outputs("ingest", output, docs, rejections)


@stage_app.command("chunk")
def stage_chunk(
    input_: InputOpt, output: OutputOpt, config: ConfigOpt = None, set_: SetOpt = None
) -> None:
    """Split documents (stage ingest's output) into chunks, sized in the student's tokens."""
    cfg = load_stage_config(config, set_)
    docs = read_input(input_, output, Document)
    from faqforge.models import resolve_tokenizer_file
    from tasks.chunk import chunk_documents, load_tokenizer

    tokenizer = load_tokenizer(str(resolve_tokenizer_file(cfg, Workspace(cfg.workspace))))
    chunks, rejections = chunk_documents(docs, tokenizer, cfg.chunk)
    write_outputs("chunk", output, chunks, rejections)


@stage_app.command("generate")
def stage_generate(
    input_: InputOpt, output: OutputOpt, config: ConfigOpt = None, set_: SetOpt = None
) -> None:
    """Ask the configured teacher for QA pairs about each chunk (stage chunk's output)."""
    cfg = load_stage_config(config, set_)
    chunks = read_input(input_, output, Chunk)
    from faqforge.teachers import make_teacher
    from faqforge.teachers.fanout import ChunksFailed, run_sync
    from tasks.generate import generate_for_chunks

    cache = Workspace(cfg.workspace.expanduser().resolve()).teacher_cache
    try:
        result = run_sync(
            generate_for_chunks(chunks, make_teacher(cfg.teacher), cache, cfg.teacher)
        )
    except ChunksFailed as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None
    write_outputs("generate", output, result.pairs, result.rejections)
