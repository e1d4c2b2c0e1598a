"""Offline teacher: facts from headings and definition-like sentences, answers copied out.

The embedded default: deterministic, no model, no network. Every answer is made of the
chunk's own sentences (so it is grounded by construction), at most ``max_answer_words``
words, cut at a sentence boundary where one fits. Questions name their subject and add the
top heading as context ("What are heuristic filters in curation?"), never "the passage".
Each fact is asked two or three ways, in different question forms (``FORMS``): "What does the
curate stage do?", "What is the job of the curate stage?", "What is the curate stage
responsible for?". The knowledge probe holds one of them out of training.

Covered: English markdown or plain text; subjects from the heading path; sentences shaped
"X is/are a ...", "X is <participle> ...", "X means/refers to ...", "The X <verb>s ...".
Not covered: paraphrasing, questions that need several sentences combined, other languages,
chunks without headings or such sentences (they get no pairs; the stage records why).
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from collections.abc import Iterable, Iterator
from itertools import zip_longest
from pathlib import Path
from typing import TypeVar

from faqforge.records import Chunk
from faqforge.storage import sha256_text
from faqforge.teachers.base import Fact, TeacherReply

T = TypeVar("T")

# fmt: off
# Words that make a sentence's subject depend on what came before it.
_DEPENDENT = {
    "it", "its", "this", "that", "these", "those", "they", "them", "there", "here", "he", "she",
    "we", "you", "i", "which", "what", "each", "every", "all", "some", "such", "both", "one",
    "other", "another", "above", "below", "following", "previous", "passage", "text", "section",
    "document",
}
# Headings that name a part of a document, not a subject a reader would ask about.
_GENERIC_HEADINGS = {
    "overview", "introduction", "intro", "summary", "usage", "example", "examples", "notes",
    "details", "background", "faq", "reference", "contents", "misc", "table of contents",
}
# fmt: on
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "approx.", "no.")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[`*_]?[A-Z0-9])")
_LIST_MARKER = re.compile(r"^([-*+]|\d+[.)])\s+")
_BOLD = re.compile(r"(?<!\w)(?:\*\*|__)(\S(?:.*?\S)?)(?:\*\*|__)(?!\w)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_SUBJECT = r"(?P<subj>[^\s,;:()]+(?:\s+[^\s,;:()]+){0,4}?)"
_BE = re.compile(_SUBJECT + r"\s+(?P<be>is|are)\s+(?P<rest>(?P<first>[\w-]+)\b.{6,})")
_MEANS = re.compile(_SUBJECT + r"\s+(?:means|refers to|stands for|denotes)\s+.{6,}")
_DOES = re.compile(
    r"(?P<subj>(?:The|A|An)\s+[^\s,;:()]+(?:\s+[^\s,;:()]+){0,3}?|`[^`]+`)"
    r"\s+(?P<verb>[a-z]{3,}s)\s+.{6,}"
)
# fmt: off
_NOT_ACTIONS = {
    "has", "was", "does", "is", "its", "this", "class", "process", "access", "less", "goes",
    "comes", "seems", "looks", "gets", "takes", "needs", "becomes", "happens", "stays", "lives",
}
_DEFINITE_STARTS = {"a", "an", "the", "one", "used", "responsible", "made", "how", "where"}
# fmt: on
_REASON = re.compile(
    r"\b(because|so that|in order to|to avoid|to keep|to make sure|otherwise|that way|"
    r"which means|this means|so a|so the|so it|, so)\b",
    re.I,
)
# "See [the docs](url) ..." after a sentence: the link belongs in that sentence's answer.
_POINTER = re.compile(r"(See|Read|For more|For details)\b.*\]\(.+")
_BECAUSE = re.compile(r"\b(because|so that|in order to|to avoid)\b", re.I)
_HOW_CUES = re.compile(r"\b(by|using|uses|runs|reads|writes|first|then|each|per|when|via)\b")


def sentences(text: str) -> list[str]:
    """Prose sentences of a chunk; headings, code blocks and table rows are skipped.

    ``sentences("# T\\nA is b. See [x](u).\\n- item")`` → ``["A is b.", "See [x](u).", "item"]``
    """
    paragraphs: list[list[str]] = [[]]
    in_code = False
    for line in text.splitlines():
        s = _BOLD.sub(r"\1", line.strip())
        if s.startswith(("```", "~~~")):
            in_code = not in_code
            paragraphs.append([])
        elif in_code or not s or s.startswith(("#", "|")):
            paragraphs.append([])
        else:
            if marker := _LIST_MARKER.match(s):  # a list item stands alone
                paragraphs.append([])
                s = s[marker.end() :]
            paragraphs[-1].append(s)
    out: list[str] = []
    for lines in filter(None, paragraphs):
        para: list[str] = []
        for piece in _SENTENCE_BREAK.split(" ".join(lines)):
            if para and para[-1].lower().endswith(_ABBREVIATIONS):  # "e.g. Foo" is one sentence
                para[-1] += " " + piece
            elif piece.strip():
                para.append(piece.strip())
        out += para
    return out


def clip_words(parts: Iterable[str], limit: int) -> str:
    """Whole sentences up to ``limit`` words; a longer first sentence is cut at a clause.

    ``clip_words(["One two.", "Three four five."], 3)`` → ``"One two."``
    """
    taken: list[str] = []
    used = 0
    for part in parts:
        n = len(part.split())
        if used + n <= limit:
            taken.append(part)
            used += n
        elif not taken:
            words = part.split()[:limit]
            clause = max(
                (i for i, w in enumerate(words) if w.endswith((",", ";", ":"))), default=-1
            )
            if clause + 1 >= limit // 2:
                words = words[: clause + 1]
            return " ".join(words).rstrip(",;:") + "…"
        else:
            break
    return " ".join(taken)


def _plain(phrase: str) -> str:
    return _LINK.sub(r"\1", phrase).strip().rstrip(":.?!").strip()


def _case(word: str, text: str, first: bool) -> str:
    """Lowercase a Title-case heading word unless the text treats it as a name.

    A name is capitalised mid-sentence ("runs on Prefect"); a common word appears in lowercase
    somewhere, or is only capitalised because it starts the heading.
    """
    if word in {"The", "A", "An"}:
        return word.lower()
    if not (word[:1].isupper() and word[1:].islower()):
        return word
    for m in re.finditer(rf"\b{re.escape(word)}\b", text):
        before = text[: m.start()].rstrip(" \t")
        if before and before[-1] not in ".!?:#\n-*|`\"'(":
            return word
    if first or re.search(rf"\b{re.escape(word.lower())}\b", text):
        return word.lower()
    return word


def _phrase(words: str, text: str) -> str:
    return " ".join(_case(w, text, i == 0) for i, w in enumerate(_plain(words).split()))


def _context(top: str, subject: str) -> str:
    """ " in <top heading>", unless the subject already names it."""
    if not top or set(top.lower().split()) <= set(subject.lower().split()):
        return ""
    return f" in {top}"


def _article(phrase: str, text: str) -> str:
    """The article the document itself uses with ``phrase``, so questions read naturally."""
    for art in ("the", "a", "an"):
        if re.search(rf"\b{art} {re.escape(phrase)}\b", text, re.I):
            return f"{art} {phrase}"
    return phrase


def _plural(phrase: str) -> bool:
    last = phrase.split()[-1].lower().strip("`")
    return last.endswith("s") and not last.endswith(("ss", "us", "is", "'s"))


def _continues(sent: str) -> bool:
    """A sentence that goes on about the previous one's subject ("It runs ...")."""
    return sent.split()[0].lower().strip("`*\"'(") in _DEPENDENT


def _belongs(sents: list[str], i: int) -> bool:
    """Whether sentence ``i`` belongs in the answer of the one before: it goes on or links on."""
    return i < len(sents) and (_continues(sents[i]) or bool(_POINTER.fullmatch(sents[i])))


def _agree(plural: bool) -> dict[str, str]:
    """Verb forms that agree with the subject: ``{be, do, s}`` ("is"/"are", "does"/"do", "s")."""
    return {"be": "are", "do": "do", "s": ""} if plural else {"be": "is", "do": "does", "s": "s"}


# Phrasings per question kind: the same fact asked in different forms, not one word swapped.
# The first is the plain form; a fact gets as many as ``phrasings`` allows. Placeholders:
# {s} subject, {c} context (" in <top heading>"), {be}/{do}/{s_} agreement, {p} participle.
FORMS: dict[str, tuple[str, ...]] = {
    "what": (
        "What {be} {s}{c}?",
        "Can you explain what {s} {be}{c}?",
        "How would you describe {s}{c}?",
    ),
    "how": (
        "How {do} {s} work{c}?",
        "Can you explain how {s} work{s_}{c}?",
        "What is the way {s} work{s_}{c}?",
    ),
    "why": (
        "Why {be} {s} used{c}?",
        "What is the reason for using {s}{c}?",
        "What {be} {s} good for{c}?",
    ),
    "more": ("What should I know about {s}{c}?", "What else is worth knowing about {s}{c}?"),
    "involve": (
        "What does {s} involve{c}?",
        "What is involved in {s}{c}?",
        "Can you walk me through {s}{c}?",
    ),
    "go_about": ("How do you go about {s}{c}?", "What are the steps of {s}{c}?"),
    "needed": (
        "Why is {s} needed{c}?",
        "What is the point of {s}{c}?",
        "What makes {s} necessary{c}?",
    ),
    "how_to": ("How do I {s}{c}?", "How can I {s}{c}?", "What is the way to {s}{c}?"),
    "means": ("What does {s} mean{c}?", "What is meant by {s}{c}?", "How is {s} defined{c}?"),
    "how_done": ("How {be} {s} {p}{c}?", "Can you explain how {s} {be} {p}{c}?"),
    "why_done": ("Why {be} {s} {p}{c}?", "What is the reason {s} {be} {p}{c}?"),
    "does": (
        "What does {s} do{c}?",
        "What is the job of {s}{c}?",
        "What is {s} responsible for{c}?",
    ),
}


def phrasings(kind: str, subject: str, ctx: str, plural: bool = False, p: str = "") -> tuple:
    """Every phrasing of one question kind about ``subject``.

    ``phrasings("does", "the curate stage", "")[:2]`` →
    ``("What does the curate stage do?", "What is the job of the curate stage?")``
    """
    agree = _agree(plural)
    return tuple(
        f.format(s=subject, c=ctx, be=agree["be"], do=agree["do"], s_=agree["s"], p=p)
        for f in FORMS[kind]
    )


def _section_facts(subject: str, top: str, sents: list[str], text: str, limit: int):
    """Heading facts: what it is, how it works, why it is used, what else to know.

    "How" and "why" are asked only when a sentence about the subject (naming it or going on
    about it) gives the way or the reason, so an answer never borrows a neighbour's content.
    """
    ctx = _context(top, subject)
    if subject.lower().startswith("how to "):
        yield phrasings("how_to", subject[7:], ctx), clip_words(sents, limit)
        return
    words = subject.split()
    # "Running the pipeline" is an activity; "Heading paths" is a thing.
    if words[0].lower().endswith("ing") and not (len(words) > 1 and _plural(words[1])):
        kinds, plural = ("involve", "go_about", "needed"), False
    else:
        subject = _article(subject, text)
        kinds, plural = ("what", "how", "why"), _plural(subject)
    what, how, why = (phrasings(k, subject, ctx, plural) for k in kinds)
    n_first = 2 if _belongs(sents, 1) else 1
    yield what, clip_words(sents[:n_first], limit)
    head = subject.split()[-1].lower().strip("`").removesuffix("s")
    about = [s for s in sents[n_first:] if head in s.lower() or _continues(s)]
    if how_sents := [s for s in about if _HOW_CUES.search(s)]:
        yield how, clip_words(how_sents, limit)
    if reasons := [s for s in sents if _REASON.search(s) and (head in s.lower() or _continues(s))]:
        yield why, clip_words(reasons, limit)
    if rest := sents[n_first:]:
        yield phrasings("more", subject, ctx, plural), clip_words(rest, limit)


def _definition_facts(top: str, sents: list[str], text: str, limit: int):
    """Facts from sentences that define or describe a named thing."""
    for i, sent in enumerate(sents):
        answer = clip_words(sents[i : i + 2] if _belongs(sents, i + 1) else [sent], limit)
        participle = ""
        if m := _MEANS.fullmatch(sent):
            subj, kind = m["subj"], "means"
        elif (m := _BE.fullmatch(sent)) and m["first"].lower() != "not":
            subj = m["subj"]
            first = m["first"].lower()
            if first in _DEFINITE_STARTS:
                kind = "what"
            elif re.fullmatch(r"[a-z]{3,}(ed|en)", first):  # "X is written ...": how, or why
                kind, participle = ("why_done" if _BECAUSE.search(sent) else "how_done"), first
            else:
                continue
        elif (m := _DOES.fullmatch(sent)) and m["verb"] not in _NOT_ACTIONS:
            subj, kind = m["subj"], "does"
        else:
            continue
        words = subj.split()
        if words[0].lower() in _DEPENDENT or (
            words[0].lower() in {"the", "a", "an"}
            and len(words) > 1
            and words[1].lower() in _DEPENDENT
        ):
            continue
        phrase = _phrase(subj, text)
        plural = kind != "means" and m.groupdict().get("be") == "are"
        yield phrasings(kind, phrase, _context(top, phrase), plural, participle), answer


def _interleave(*streams: Iterable[T]) -> Iterator[T]:
    for group in zip_longest(*streams):
        yield from (item for item in group if item is not None)


def _norm(question: str) -> str:
    return re.sub(r"\W+", " ", question.lower()).strip()


def extract_facts(
    heading_path: list[str],
    text: str,
    n_facts: int,
    max_answer_words: int,
    n_phrasings: int = 3,
    topic: str = "",
) -> list[Fact]:
    """Up to ``n_facts`` facts, heading and definition forms mixed, each asked up to
    ``n_phrasings`` ways (every form has at least two).

    ``extract_facts(["Curation", "Heuristic filters"], "Heuristic filters drop ...", 2, 60)``
    → ``[Fact("Heuristic filters drop ...", ("What are heuristic filters in curation?",
    "Can you explain what heuristic filters are in curation?", ...)), ...]``

    ``topic`` (e.g. the file name) gives one last-resort fact when nothing else applies.
    Questions are unique across the chunk's facts; so are answers (one answer, one fact).
    """
    sents = sentences(text)
    if not sents:
        return []
    path = [_plain(h) for h in heading_path if _plain(h).lower() not in _GENERIC_HEADINGS]
    top = _phrase(path[0], text) if len(path) > 1 else ""
    from_heading = (
        _section_facts(_phrase(path[-1], text), top, sents, text, max_answer_words) if path else ()
    )
    from_sentences = _definition_facts(top, sents, text, max_answer_words)
    seen: set[str] = set()
    facts: list[Fact] = []
    for forms, answer in _interleave(from_heading, from_sentences):
        if not answer or answer in seen or _norm(forms[0]) in seen:
            continue
        questions = tuple(q for q in forms if _norm(q) not in seen)[:n_phrasings]
        seen.update([answer, *map(_norm, questions)])
        facts.append(Fact(answer, questions))
        if len(facts) == n_facts:
            break
    if not facts and topic:  # no heading, no definition: one fact about the file's topic
        forms = ("What should I know about {s}?", "What is there to know about {s}?")
        answer = clip_words(sents[:2], max_answer_words)
        facts.append(Fact(answer, tuple(f.format(s=topic) for f in forms)[:n_phrasings]))
    return facts


PROMPT_VERSION = "extractive-" + sha256_text(inspect.getsource(sys.modules[__name__]), 12)


class ExtractiveTeacher:
    """The offline default teacher; ``name`` is ``"extractive"``, tokens are never billed."""

    name = "extractive"
    prompt_version = PROMPT_VERSION

    def __init__(self, max_answer_words: int, phrasings: int = 3):
        self.max_answer_words = max_answer_words
        self.phrasings = phrasings

    def schema_version(self, n_facts: int) -> str:
        """No schema: the facts are built in code (its source is in ``prompt_version``)."""
        return "none"

    async def generate(self, chunk: Chunk, n_facts: int) -> TeacherReply:
        topic = Path(chunk.source).stem.replace("-", " ").replace("_", " ")
        facts = extract_facts(
            chunk.heading_path,
            chunk.text,
            n_facts,
            self.max_answer_words,
            self.phrasings,
            topic=topic,
        )
        raw = json.dumps(
            {"facts": [{"answer": f.answer, "questions": list(f.questions)} for f in facts]}
        )
        return TeacherReply(facts=facts, raw=raw)

    async def aclose(self) -> None:
        """Nothing to release."""
