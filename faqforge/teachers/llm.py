"""The teacher that asks a language model: the generate_qa prompt, a schema, a backend.

The same class serves ``kind: openai`` (an HTTP endpoint) and ``kind: vllm`` (an in-process
engine); only the backend differs. ``prompt_version`` is the prompt files' hash.
"""

from __future__ import annotations

from faqforge.config import TeacherConfig
from faqforge.prompts import Prompt, fence, load_prompt, quoted
from faqforge.records import Chunk
from faqforge.teachers.base import ChatBackend, TeacherReply
from faqforge.teachers.schema import parse_facts, qa_schema, schema_hash
from faqforge.teachers.structured import ask_json


class LLMTeacher:
    """``name`` is the served model; ``prompt_version`` the generate_qa prompt's hash."""

    def __init__(self, cfg: TeacherConfig, backend: ChatBackend, prompt: Prompt | None = None):
        self.cfg = cfg
        self.backend = backend
        self.name = cfg.model
        self.prompt = prompt or load_prompt("generate_qa")
        self.prompt_version = self.prompt.version

    def schema(self, n_facts: int) -> dict:
        return qa_schema(n_facts, self.cfg.phrasings, self.cfg.max_answer_words)

    def schema_version(self, n_facts: int) -> str:
        return schema_hash(self.schema(n_facts))

    def messages(self, chunk: Chunk, n_facts: int) -> list[dict[str, str]]:
        user = self.prompt.render_user(
            document=fence(chunk.text),
            heading_path=quoted(" > ".join(chunk.heading_path)),
            source=quoted(chunk.source),
            n_facts=n_facts,
            phrasings=self.cfg.phrasings,
            max_answer_words=self.cfg.max_answer_words,
        )
        return [
            {"role": "system", "content": self.prompt.system},
            {"role": "user", "content": user},
        ]

    async def generate(self, chunk: Chunk, n_facts: int) -> TeacherReply:
        facts, calls, raw = await ask_json(
            self.backend,
            self.messages(chunk, n_facts),
            self.schema(n_facts),
            lambda text: parse_facts(text, n_facts),
            temperature=self.cfg.temperature,
            max_tokens=self.cfg.max_tokens,
        )
        return TeacherReply(facts, tuple(calls), raw)

    async def aclose(self) -> None:
        await self.backend.aclose()
