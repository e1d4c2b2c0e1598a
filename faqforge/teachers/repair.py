"""An LLM teacher's repair of an ambiguous question: one distinguishing question per answer.

``tasks/ambiguity.py`` finds a question asked of several different answers; this asks the
teacher (the repair_question prompt, JSON-schema reply) for one question per answer that names
what tells it apart. Replies are cached by content under the teacher cache (question, answers
with their headings, model, prompt version and schema), so a re-run asks nothing again. A
request that fails, or a reply that does not parse, leaves the group unrepaired (dedup then
rejects the extras as ``ambiguous_question``); it never fails the stage.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faqforge.config import TeacherConfig, stable_hash
from faqforge.prompts import load_prompt, quoted
from faqforge.records import QAPair
from faqforge.storage import write_json
from faqforge.teachers.base import ChatBackend, TeacherError
from faqforge.teachers.cache import read_entry
from faqforge.teachers.schema import QUESTION_CHARS, parse_questions, questions_schema
from faqforge.teachers.structured import ask_json

log = logging.getLogger(__name__)


class TeacherRepair:
    """``repair(question, members)`` → one new question per member (None where none came)."""

    def __init__(self, cfg: TeacherConfig, backend: ChatBackend, cache_dir: Path):
        self.cfg, self.backend, self.cache_dir = cfg, backend, cache_dir
        self.prompt = load_prompt("repair_question")
        self.name = f"teacher:{backend.model}"

    def messages(self, question: str, members: Sequence[QAPair]) -> list[dict[str, str]]:
        answers = [
            {"index": i, "answer": p.answer, "source": p.source, "headings": p.heading_path}
            for i, p in enumerate(members)
        ]
        user = self.prompt.render_user(
            question=quoted(question),
            n_answers=len(members),
            answers=json.dumps(answers, ensure_ascii=False, indent=1),
        )
        return [
            {"role": "system", "content": self.prompt.system},
            {"role": "user", "content": user},
        ]

    def _path(self, question: str, members: Sequence[QAPair]) -> Path:
        key = stable_hash(
            [question, [[p.answer, p.heading_path] for p in members], self.backend.model,
             self.prompt.version, questions_schema(len(members))],
            32,
        )  # fmt: skip
        return self.cache_dir / "repair" / key[:2] / f"{key}.json"

    async def _ask(self, question: str, members: Sequence[QAPair]) -> list[str] | None:
        path = self._path(question, members)
        if (cached := read_entry(path, ("questions",))) is not None:
            return [str(q) for q in cached["questions"]]
        try:
            questions, _, _ = await ask_json(
                self.backend,
                self.messages(question, members),
                questions_schema(len(members)),
                lambda text: parse_questions(text, len(members)),
                temperature=self.cfg.temperature,
                max_tokens=min(self.cfg.max_tokens, 64 + len(members) * QUESTION_CHARS // 3),
            )
        except TeacherError as err:
            log.warning("repair of %r failed: %s", question, err.detail)
            return None
        write_json(path, {"question": question, "questions": questions})
        return questions

    def __call__(self, question: str, members: Sequence[QAPair]) -> list[str | None]:
        async def ask() -> list[str] | None:
            try:
                return await self._ask(question, members)
            finally:
                await self.backend.aclose()

        answer = asyncio.run(ask())
        return list(answer) if answer else [None] * len(members)


def make_repair(cfg: TeacherConfig, cache_dir: Path) -> Any:
    """The repair of ``cfg``'s teacher: context for extractive, a request for an LLM."""
    if cfg.kind == "extractive":
        from tasks.ambiguity import ContextRepair

        return ContextRepair()
    from faqforge.teachers import make_backend

    return TeacherRepair(cfg, make_backend(cfg), cache_dir)
