"""Ambiguous questions: one question asked of several facts, repaired before dedup runs.

"What are variables in proxy settings?" asked of 475 different variables is not one pair
475 times: it is one question that names the wrong subject. Dedup's exact rule would keep one
answer and drop 474, losing content silently. So before dedup, pairs that share a normalised
question but not an answer (their answers are neither equal nor near-equal) are a group, and
each member is asked again for a question that names what distinguishes it:

- the extractive teacher's repair (``ContextRepair``): the question names the most specific
  context the question lacks, its nearest specific heading or the page it came from
  ("What are variables in proxy settings in git-config?");
- an LLM teacher's repair (``faqforge.teachers.repair``): the teacher reads the question and
  every answer with its headings and writes one question per answer.

A repaired pair gets its new question (and so a new id); its fact and lineage are unchanged.
Members the repair could not tell apart keep the shared question, and dedup rejects all but
one of them as ``ambiguous_question``, naming the pair kept. Every group is listed with the
outcome in the dedup stage's ``ambiguous`` file.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from faqforge.config import stable_hash
from faqforge.records import QAPair
from faqforge.teachers.extractive import is_generic, is_title, subject_of_title
from tasks.text import jaccard, normalise, question_identity, shingles

# Answers this similar (word-pair Jaccard) say the same thing: duplicates, not ambiguity.
SAME_ANSWER = 0.5

Repair = Callable[[str, Sequence[QAPair]], list[str | None]]


def same_answer(a: str, b: str) -> bool:
    return normalise(a) == normalise(b) or jaccard(shingles(a), shingles(b)) >= SAME_ANSWER


def ambiguous_groups(pairs: Sequence[QAPair]) -> list[list[int]]:
    """Indices of pairs sharing a normalised question whose answers do not all agree."""
    by_question: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(pairs):
        by_question[question_identity(p.question)].append(i)
    groups = []
    for members in by_question.values():
        first = pairs[members[0]].answer
        if len(members) > 1 and any(not same_answer(first, pairs[i].answer) for i in members):
            groups.append(members)
    return groups


def _contexts(pair: QAPair) -> list[str]:
    """Where a pair comes from, most specific first: its headings (section names and page
    titles aside), then the page's subject (title or file name)."""
    headings = [
        h.lower() if h.isupper() else h for h in reversed(pair.heading_path) if not is_generic(h)
    ]
    titles = [subject_of_title(h) for h in pair.heading_path if is_title(h)]
    stem = pair.source.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return [*headings, *titles, stem]


class ContextRepair:
    """The extractive teacher's repair: name the first context the question does not."""

    name = "context"

    def __call__(self, question: str, members: Sequence[QAPair]) -> list[str | None]:
        out: list[str | None] = []
        asked = normalise(question)
        for pair in members:
            ctx = next((c for c in _contexts(pair) if normalise(c) not in asked), None)
            out.append(f"{question.rstrip(' ?')} in {ctx}?" if ctx else None)
        return out


@dataclass
class Outcome:
    """Pairs after repair, and one row per ambiguous group for the stage's report."""

    pairs: list[QAPair]
    groups: list[dict[str, Any]]

    @property
    def repaired(self) -> int:
        return sum(len(g["repaired"]) for g in self.groups)


def repair_ambiguous(pairs: Sequence[QAPair], repair: Repair, keep_ids: bool = False) -> Outcome:
    """Ask ``repair`` for a distinguishing question for every member of every ambiguous group.

    A member keeps its new question only when it is unique within the group after the repair;
    the pair's id follows its question (``qa-`` + hash of chunk, question and answer) unless
    ``keep_ids`` (ids given by a user, as in ``faqforge stage dedup``).
    """
    out = list(pairs)
    report = []
    for members in ambiguous_groups(pairs):
        question = pairs[members[0]].question
        proposed = repair(question, [pairs[i] for i in members])
        counts: dict[str, int] = defaultdict(int)
        for q in proposed:
            if q:
                counts[normalise(q)] += 1
        repaired = []
        for i, new in zip(members, proposed, strict=True):
            if new and counts[normalise(new)] == 1 and normalise(new) != normalise(question):
                old = pairs[i]
                pair_id = (
                    old.id if keep_ids else "qa-" + stable_hash([old.chunk_id, new, old.answer])
                )
                out[i] = replace(old, id=pair_id, question=new)
                repaired.append({"from": old.id, "to": pair_id, "question": new})
        report.append(
            {
                "question": question,
                "pairs": [pairs[i].id for i in members],
                "repaired": repaired,
                "unrepaired": len(members) - len(repaired),
            }
        )
    return Outcome(out, report)
