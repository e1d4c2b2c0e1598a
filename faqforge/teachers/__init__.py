"""Teachers write question/answer pairs about a chunk; ``make_teacher`` picks one from config.

``extractive`` (offline, the embedded default) and ``openai`` (any OpenAI-compatible
server, e.g. ``vllm serve``) are the two implementations; the stage sees only ``Teacher``.
"""

from __future__ import annotations

from faqforge.config import TeacherConfig
from faqforge.teachers.base import Teacher, TeacherError, TeacherReply, Usage


def make_teacher(cfg: TeacherConfig) -> Teacher:
    """The teacher ``cfg.kind`` names; the openai client is imported only when used."""
    if cfg.kind == "openai":
        from faqforge.teachers.openai_compat import OpenAITeacher

        return OpenAITeacher(cfg)
    from faqforge.teachers.extractive import ExtractiveTeacher

    return ExtractiveTeacher(cfg.max_answer_words)


__all__ = ["Teacher", "TeacherError", "TeacherReply", "Usage", "make_teacher"]
