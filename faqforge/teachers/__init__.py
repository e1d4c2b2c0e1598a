"""Teachers write question/answer pairs about a chunk; ``make_teacher`` picks one from config.

``extractive`` (offline, the embedded default) needs no model. ``openai`` (any
OpenAI-compatible server, e.g. ``vllm serve``) and ``vllm`` (an in-process engine) are one
``LLMTeacher`` over two chat backends, which the judge shares. Heavy clients are imported
only when used.
"""

from __future__ import annotations

from faqforge.config import TeacherConfig
from faqforge.teachers.base import ChatBackend, Teacher, TeacherError, TeacherReply, Usage


def make_backend(cfg: TeacherConfig, judge: bool = False) -> ChatBackend:
    """The teacher's backend, or the judge's: its own endpoint/model where it names them."""
    j = cfg.judge
    model = (j.model if judge else None) or cfg.model
    if cfg.kind == "vllm" and not (judge and j.base_url):
        from faqforge.teachers.vllm_engine import VLLMBackend

        return VLLMBackend(model, cfg.vllm_engine_args, max_batch=cfg.concurrency)
    from faqforge.teachers.openai_compat import OpenAIBackend

    return OpenAIBackend(
        (j.base_url if judge else None) or cfg.base_url,
        model,
        (j.api_key_env if judge else None) or cfg.api_key_env,
        timeout_s=cfg.timeout_s,
        max_retries=cfg.max_retries,
        backoff_s=cfg.backoff_s,
        backoff_max_s=cfg.backoff_max_s,
    )


def make_teacher(cfg: TeacherConfig) -> Teacher:
    """The teacher ``cfg.kind`` names."""
    if cfg.kind == "extractive":
        from faqforge.teachers.extractive import ExtractiveTeacher

        return ExtractiveTeacher(cfg.max_answer_words, cfg.phrasings)
    from faqforge.teachers.llm import LLMTeacher

    return LLMTeacher(cfg, make_backend(cfg))


__all__ = [
    "ChatBackend",
    "Teacher",
    "TeacherError",
    "TeacherReply",
    "Usage",
    "make_backend",
    "make_teacher",
]
