"""The pair rater (the judge stage's model): rates a chunk's pairs 1–10 on accuracy, relevance,
clarity and usefulness. Not the evaluation's answer grader (``tasks/evaluate/grader.py``).

One request per chunk rates all of its pairs (the chunk text is sent once, not once per
pair). The judge_qa prompt is versioned like generate_qa; its version, the judge model and
the schema are the judge's cache key parts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from faqforge.config import JudgeConfig
from faqforge.prompts import Prompt, fence, load_prompt, quoted
from faqforge.records import Chunk
from faqforge.teachers.base import ChatBackend, Usage
from faqforge.teachers.schema import Rating, judge_schema, parse_ratings, schema_hash
from faqforge.teachers.structured import ask_json


@dataclass(frozen=True)
class Verdict:
    """The ratings of one chunk's pairs, the requests they took, and the raw reply."""

    ratings: list[Rating]
    calls: tuple[Usage, ...]
    raw: str


class PairRater:
    """``await judge.rate(chunk, [("Q?", "A.")])`` → ``Verdict([Rating(...)], calls, raw)``."""

    def __init__(self, cfg: JudgeConfig, backend: ChatBackend, prompt: Prompt | None = None):
        self.cfg = cfg
        self.backend = backend
        self.name = backend.model
        self.prompt = prompt or load_prompt("judge_qa")
        self.prompt_version = self.prompt.version

    def schema_version(self, n_pairs: int) -> str:
        return schema_hash(judge_schema(n_pairs))

    def messages(self, chunk: Chunk, pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
        numbered = [{"index": i, "question": q, "answer": a} for i, (q, a) in enumerate(pairs)]
        user = self.prompt.render_user(
            document=fence(chunk.text),
            heading_path=quoted(" > ".join(chunk.heading_path)),
            source=quoted(chunk.source),
            n_pairs=len(pairs),
            pairs=json.dumps(numbered, ensure_ascii=False, indent=1),
        )
        return [
            {"role": "system", "content": self.prompt.system},
            {"role": "user", "content": user},
        ]

    async def rate(self, chunk: Chunk, pairs: list[tuple[str, str]]) -> Verdict:
        ratings, calls, raw = await ask_json(
            self.backend,
            self.messages(chunk, pairs),
            judge_schema(len(pairs)),
            lambda text: parse_ratings(text, len(pairs)),
            temperature=self.cfg.temperature,
            max_tokens=self.cfg.max_tokens,
        )
        return Verdict(ratings, tuple(calls), raw)

    async def aclose(self) -> None:
        await self.backend.aclose()
