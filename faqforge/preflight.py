"""Checks a run can make before it starts a server or writes a file.

A missing corpus or a language code the model cannot emit used to surface 50 s in, after a
Prefect server had started, as a long traceback. These checks are cheap, so the command
answers at once with every problem, as a ``ConfigError`` (exit code 2).
"""

from __future__ import annotations

from faqforge.config import ConfigError, PipelineConfig


def preflight(cfg: PipelineConfig, reads_corpus: bool) -> None:
    problems = []
    if reads_corpus:
        if not cfg.source.exists():
            problems.append(f"source {cfg.source}: no such folder (set --source)")
        elif not cfg.source.is_dir():
            problems.append(f"source {cfg.source}: a file, not a folder of documents")
        from tasks.language import check_codes

        try:
            check_codes(cfg.curate.languages)
        except ValueError as exc:
            problems.append(str(exc))
    if cfg.workspace.exists() and not cfg.workspace.is_dir():
        problems.append(f"workspace {cfg.workspace}: a file, not a folder")
    if problems:
        raise ConfigError("cannot start:\n" + "\n".join(f"  - {p}" for p in problems))
