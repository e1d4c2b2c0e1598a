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
from faqforge.structure import CONTINUED, Block, blocks
from faqforge.teachers.base import Fact, TeacherReply, Usage

T = TypeVar("T")

# fmt: off
# Words that make a sentence's subject depend on what came before it.
_DEPENDENT = {
    "it", "its", "this", "that", "these", "those", "they", "them", "there", "here", "he", "she",
    "we", "you", "i", "which", "what", "each", "every", "all", "some", "such", "both", "one",
    "other", "another", "above", "below", "following", "previous", "passage", "text", "section",
    "document",
}
# A sentence opening a condition, a sequence or an address to the reader has no subject to
# ask about: "If no --type is given, ...", "First let's assume your topic is ...".
_NO_SUBJECT = {
    "if", "when", "unless", "although", "though", "while", "since", "because", "once", "after",
    "before", "whether", "first", "then", "next", "now", "finally", "also", "however", "so",
    "but", "and", "or", "note", "your", "our", "my", "let's", "let’s", "please",
}
# Headings that name a part of a document, not a subject a reader would ask about; man pages'
# section names (NAME, SYNOPSIS, OPTIONS, ...) are written in capitals and caught by that too.
_GENERIC_HEADINGS = {
    "overview", "introduction", "intro", "summary", "usage", "example", "examples", "notes",
    "details", "background", "faq", "reference", "contents", "misc", "table of contents",
    "name", "synopsis", "description", "options", "see also", "configuration", "files",
    "environment", "bugs", "author", "authors", "discussion", "exit status", "return value",
    "history", "copyright", "output", "hooks", "reporting bugs", "git", "documentation",
}
# fmt: on
_WH_WORDS = {"how", "what", "when", "where", "why", "which", "who"}
# A page title is context, never a subject: "git-rebase(1) Manual Page" → git-rebase.
_TITLE = re.compile(r"^(?P<name>.+?)(?:\s*\(\d\w*\))?(?:\s+Manual Page)?$", re.I)
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "approx.", "no.")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[`*_]?[A-Z0-9])")
_LIST_MARKER = re.compile(r"^([-*+]|\d+[.)])\s+")
# A sentence ends in . ! ? or : (then maybe a closing quote, bracket or code span); a text
# without one is a fragment (a lead-in cut by a code block, a table cell, a title line).
_SENTENCE_END = re.compile(r"[.!?:][\"'’”)\]`*]*$")
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


def split_sentences(text: str) -> list[str]:
    """``"A is b. B is c."`` → ``["A is b.", "B is c."]``; "e.g. Foo" stays one sentence."""
    out: list[str] = []
    for piece in _SENTENCE_BREAK.split(" ".join(text.split())):
        if out and out[-1].lower().endswith(_ABBREVIATIONS):
            out[-1] += " " + piece
        elif piece.strip():
            out.append(piece.strip())
    return out


def sentences(text: str) -> list[str]:
    """Prose sentences of a chunk: paragraphs and list items; code, tables and definition
    entries are not prose (entries become facts of their own, ``_entry_facts``).

    ``sentences("A is b. See [x](u).\n\n- item")`` → ``["A is b.", "See [x](u).", "item"]``
    """
    out: list[str] = []
    for block in blocks(text):
        if block.kind in ("paragraph", "item"):
            out += [
                s for s in split_sentences(_BOLD.sub(r"\1", block.text)) if _SENTENCE_END.search(s)
            ]
    return out


def clip_words(parts: Iterable[str], limit: int) -> str:
    """Whole sentences up to ``limit`` words, never a fragment: ``""`` when the first sentence
    alone is longer; a sentence ending in ":" (it introduces what follows) ends the answer.

    ``clip_words(["One two.", "Three four five."], 3)`` → ``"One two."``
    """
    taken: list[str] = []
    used = 0
    for part in parts:
        n = len(part.split())
        if used + n > limit or part.rstrip().endswith(":"):
            break  # what a ":" introduces (code, a list) is not in the answer: stop before it
        taken.append(part)
        used += n
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
    plain = _plain(words)
    if _shouting(plain):  # a man page's "MERGING TAG" reads "merging tag" in a question
        return plain.lower()
    return " ".join(_case(w, text, i == 0) for i, w in enumerate(plain.split()))


def _shouting(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return len(letters) >= 3 and all(c.isupper() for c in letters) and " " in text.strip()


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


def is_generic(heading: str) -> bool:
    """A section name (``OPTIONS``, ``Examples``) or page title, not a subject to ask about.
    Man pages write every heading in capitals: "HOW CONFLICTS ARE PRESENTED" is a subject."""
    plain = _plain(heading)
    return plain.lower() in _GENERIC_HEADINGS or is_title(plain)


def is_title(heading: str) -> bool:
    """A man-page style title: ``git-rebase(1) Manual Page``."""
    return bool(re.search(r"\(\d\w*\)|\bManual Page$", heading, re.I))


def subject_of_title(heading: str) -> str:
    """``"git-rebase(1) Manual Page"`` → ``"git-rebase"``: what the page is about."""
    m = _TITLE.match(_plain(heading))
    return m["name"].strip() if m else _plain(heading)


def term_kind(term: str) -> str:
    """What a definition entry names: option, argument, config or env variable, callable, term.

    ``term_kind("--onto <newbase>") == "option"``, ``term_kind("pull.rebase") == "config"``
    """
    t = term.strip("`")
    if t.startswith("-"):
        return "option"
    if re.fullmatch(r"<[^<>]+>(\.\.\.)?", t):
        return "argument"
    if re.fullmatch(r"[A-Z][A-Z0-9_]{2,}", t) and "_" in t:
        return "env"
    if re.fullmatch(r"[a-z][\w-]*(\.[\w<>*-]+)+", t):
        return "config"
    if "(" in t or t.startswith(("class ", "def ")):
        return "callable"
    return "term"


def aliases(term: str) -> list[str]:
    """``"-i, --interactive"`` → ``["-i", "--interactive"]``; commas inside brackets stay:
    ``"str.center(width[, fillchar])"`` is one."""
    out, depth, current = [], 0, ""
    for i, c in enumerate(term):
        depth += c in "([{<"
        depth -= c in ")]}>"
        if c == "," and depth <= 0 and term[i + 1 : i + 2] == " ":
            out.append(current.strip())
            current = ""
        else:
            current += c
    return [a for a in [*out, current.strip()] if a]


def entry_phrasings(term: str, doc: str) -> tuple[str, ...]:
    """Questions that name a definition entry's term (and, for options and arguments, the
    command they belong to): "What does the `--onto <newbase>` option of `git-rebase` do?"."""
    kind = "command" if doc and term == doc else term_kind(term)
    t = aliases(term)[0] if kind == "callable" else term
    code = f"`{t.strip('`')}`"
    of, to, with_ = (f" of `{doc}`", f" to `{doc}`", f" with `{doc}`") if doc else ("", "", "")
    forms = {
        "option": (f"What does the {code} option{of} do?", f"When would I use {code}{with_}?",
                   f"What is {code} for{f' in `{doc}`' if doc else ''}?"),
        "argument": (f"What is the {code} argument{of}?", f"What should I pass as {code}{to}?"),
        "config": (f"What does the {code} configuration variable do?",
                   f"What is {code} used for?", f"What happens when {code} is set?"),
        "env": (f"What does the {code} environment variable do?", f"What is {code} used for?",
                f"When should I set {code}?"),
        "callable": (f"What does {code} do?", f"What is {code} used for?",
                     f"Can you explain what {code} does?"),
        "command": (f"What does {code} do?", f"What is {code} used for?",
                    f"When should I use {code}?"),
    }  # fmt: skip
    if kind in forms:
        return forms[kind]
    ctx = f" in {doc}" if doc and doc.lower() not in t.lower() else ""
    return (f"What is {t}{ctx}?", f"What does {t} mean{ctx}?", f"Can you explain {t}{ctx}?")


def _entry_facts(chunk_blocks: list[Block], doc: str, limit: int):
    """One fact per definition entry: its description's first sentences, asked by its term."""
    for block in chunk_blocks:
        if block.kind != "definition" or not re.search(r"[A-Za-z]{3}", block.text):
            continue
        if block.term.endswith(CONTINUED):  # asked about once, from the entry's first part
            continue
        desc = split_sentences(block.text)
        if desc:  # a description is written as a label: "Reapply commits on top of ..."
            desc[0] = desc[0][:1].upper() + desc[0][1:]
            desc[-1] += "" if _SENTENCE_END.search(desc[-1]) else "."
        answer = clip_words(desc, limit)
        if answer and len(answer.split()) >= 3:
            yield entry_phrasings(block.term, doc), answer


def _section_facts(subject: str, top: str, sents: list[str], text: str, limit: int):
    """Heading facts: what it is, how it works, why it is used, what else to know.

    "How" and "why" are asked only when a sentence about the subject (naming it or going on
    about it) gives the way or the reason, so an answer never borrows a neighbour's content.
    """
    ctx = _context(top, subject)
    if subject.lower().startswith("how to "):
        yield phrasings("how_to", subject[7:], ctx), clip_words(sents, limit)
        return
    if subject.split()[0].lower() in _WH_WORDS:  # "How conflicts are presented": a topic
        yield phrasings("more", subject, ctx), clip_words(sents, limit)
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
        lowered = {w.lower().strip("`\"'(") for w in words}
        if (
            words[0].lower() in _DEPENDENT | _NO_SUBJECT
            or lowered & (_NO_SUBJECT - {"so"})
            or (
                words[0].lower() in {"the", "a", "an"}
                and len(words) > 1
                and words[1].lower() in _DEPENDENT
            )
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
    section_start: bool = True,
) -> list[Fact]:
    """A fact per definition entry (they name their subject), then up to ``n_facts`` facts from
    heading and definitional sentence forms mixed, each asked up to ``n_phrasings`` ways
    (every form has two or more).

    ``extract_facts(["Curation", "Heuristic filters"], "Heuristic filters drop ...", 2, 60)``
    → ``[Fact("Heuristic filters drop ...", ("What are heuristic filters in curation?",
    "Can you explain what heuristic filters are in curation?", ...)), ...]``

    Section names (OPTIONS, Examples) and page titles are context, never the subject. The
    heading's own facts (what it is, how, why) come only from the chunk that starts its
    section (``section_start``): the section's later chunks would ask the same question of
    other text. ``topic`` (e.g. the file name) gives one last-resort fact when nothing else
    applies. Questions are unique across the chunk's facts; so are answers.
    """
    chunk_blocks = blocks(text)
    sents = sentences(text)
    doc = subject_of_title(heading_path[0]) if heading_path and is_title(heading_path[0]) else ""
    path = [_plain(h) for h in heading_path if not is_generic(h)]
    top = doc or (_phrase(path[0], text) if len(path) > 1 else "")
    heading = path[-1] if path and (len(path) > 1 or not doc) else ""
    from_heading = (
        _section_facts(_phrase(heading, text), top, sents, text, max_answer_words)
        if heading and section_start and sents
        else ()
    )
    from_entries = _entry_facts(chunk_blocks, doc, max_answer_words)
    from_sentences = _definition_facts(top, sents, text, max_answer_words)
    seen: set[str] = set()
    facts: list[Fact] = []
    # Every entry is a fact (they are what reference pages are made of); the rest up to n_facts.
    entries: list[Fact] = []
    for stream, into, cap in (
        (from_entries, entries, None),
        (_interleave(from_heading, from_sentences), facts, n_facts),
    ):
        for forms, answer in stream:
            if not _SENTENCE_END.search(answer) or answer in seen or _norm(forms[0]) in seen:
                continue
            questions = tuple(q for q in forms if _norm(q) not in seen)[:n_phrasings]
            seen.update([answer, *map(_norm, questions)])
            into.append(Fact(answer, questions))
            if len(into) == cap:
                break
    facts = entries + facts
    if not facts and topic and sents and section_start:  # one fact about the file's topic
        answer = clip_words(sents[:2], max_answer_words)
        forms = ("What should I know about {s}?", "What is there to know about {s}?")
        if answer:
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
            section_start=chunk.section_start,
        )
        raw = json.dumps(
            {"facts": [{"answer": f.answer, "questions": list(f.questions)} for f in facts]}
        )
        # One request that costs no tokens: the ledger counts what generate's counts count.
        return TeacherReply(facts=facts, calls=(Usage(),), raw=raw)

    async def aclose(self) -> None:
        """Nothing to release."""
