"""Document structure: the markdown subset every stage after ingest reads, and the blocks in it.

Ingest turns each format into one text convention, so chunking and the teachers see
structure the same way whatever the source was:

- headings are ``#`` lines (real headings only: never a comment inside code);
- code is fenced (```` ``` ````), longer fences when the code holds backtick runs;
- a definition entry is a term line followed by ``: description`` lines, the pandoc
  definition-list form::

      --onto <newbase>
      : Starting point at which to create the new commits.

  HTML ``dl/dt/dd``, table rows, man-page style entries in plain text (a short term line over
  an indented description) and markdown list items of the form ``- `term`: description``
  all become entries.

``text_to_markdown`` reads plain text: setext headings (a line underlined with ``=``, ``-``,
``*``, ``~`` or ``^``; levels in order of first use, as reStructuredText does), indented
literal blocks as code, term + indented description as definition entries.
``blocks`` splits such text into ``Block`` records (paragraph, code, definition, list item).
Not covered: nested lists beyond one level, tables in plain text, footnotes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
# The term line of a definition entry's later part, when the chunker had to cut it.
CONTINUED = " (continued)"
_UNDERLINE = re.compile(r"^([=\-*~^#])\1{2,}\s*$")
_HEADING_LINE = re.compile(r"^#{1,6}\s")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(.*)$")
# "- `term`: description", "- **term** — description", "- term: description"
_LIST_DEFINITION = re.compile(
    r"^(?:`(?P<code>[^`]{1,80})`|\*\*(?P<bold>[^*]{1,80})\*\*"
    r"|(?P<plain>[\w.<>/-]{1,40}(?: [\w.<>/-]+){0,3}))"
    r"\s*(?::|—|–| - )\s+(?P<desc>\S.*)$"
)
# A man page's NAME line: one token, " - ", what it does.
_NAME_LINE = re.compile(r"^(?P<term>[\w.+-]+) - (?P<desc>\S.{8,})$")
_CODE_MARKS = re.compile(r"^\s*(>>>|\.\.\.|\$ |#!|[{}\[\]]\s*$)|::=|\bdef \w+\(|;\s*$")


def fence(code: str) -> str:
    """``code`` in a fence longer than any backtick run inside it."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    bar = "`" * max(3, longest + 1)
    return f"{bar}\n{code.rstrip()}\n{bar}"


def definition(term: str, paragraphs: list[str]) -> str:
    """One definition entry: ``term`` over a ``: `` line per description paragraph."""
    term = " ".join(term.split())
    lines = [": " + " ".join(p.split()) for p in paragraphs if p.strip()]
    return "\n".join([term, *lines]) if lines else term


# --- plain text ------------------------------------------------------------------------------


@dataclass
class _Para:
    indent: int
    lines: list[str]

    @property
    def text(self) -> str:
        return "\n".join(line.strip() for line in self.lines)


def _paragraphs(lines: list[str]) -> list[_Para]:
    paras: list[_Para] = []
    current: list[str] = []
    for line in [*lines, ""]:
        if line.strip():
            current.append(line)
        elif current:
            indent = min(len(x) - len(x.lstrip()) for x in current)
            paras.append(_Para(indent, current))
            current = []
    return paras


def _is_term(p: _Para) -> bool:
    """A short label line (or a few signature lines): ``str.capitalize()``, ``-v, --verbose``."""
    lines = [line.strip() for line in p.lines]
    return (
        len(lines) <= 4
        and all(len(line) <= 90 for line in lines)
        and len(lines[0].split()) <= 8
        and not lines[-1].endswith((".", ":", ";", ","))
        and not _CODE_MARKS.search(lines[0])
    )


def _is_prose(p: _Para) -> bool:
    text = p.text
    return (
        len(text.split()) >= 4
        and bool(re.search(r"[.!?]$", text))
        and not _CODE_MARKS.search(text.split("\n")[0])
        and sum(c.isalpha() for c in text) > len(text) / 2
    )


def _headings(lines: list[str]) -> list[str]:
    """Setext headings → ``#`` lines; the level of each underline character is its first use."""
    levels: dict[str, int] = {}
    out: list[str] = []
    i = 0
    while i < len(lines):
        line, nxt = lines[i], lines[i + 1] if i + 1 < len(lines) else ""
        under = _UNDERLINE.match(nxt)
        if (
            under
            and line.strip()
            and not line.startswith((" ", "\t"))
            and len(nxt.strip()) >= 0.6 * len(line.strip())
        ):
            level = levels.setdefault(under.group(1), min(len(levels) + 1, 6))
            out += ["", f"{'#' * level} {line.strip()}", ""]
            i += 2
            continue
        out.append(line.replace("\t", "    "))
        i += 1
    return out


def text_to_markdown(text: str) -> str:
    """Plain text → the markdown subset above.

    >>> print(text_to_markdown("Title\\n=====\\n\\nlen(d)\\n\\n   Return the number of items."))
    # Title
    <BLANKLINE>
    len(d)
    : Return the number of items.
    """
    paras = _paragraphs(_headings(text.split("\n")))
    out: list[str] = []
    i = 0
    while i < len(paras):
        p = paras[i]
        if p.text.startswith("#") and len(p.lines) == 1 and p.indent == 0:
            out.append(p.text)
            i += 1
            continue
        nxt = paras[i + 1] if i + 1 < len(paras) else None
        if nxt is not None and nxt.indent > p.indent and _is_term(p) and _is_prose(nxt):
            desc, j = [nxt.text], i + 2
            while j < len(paras) and paras[j].indent == nxt.indent and _is_prose(paras[j]):
                after = paras[j + 1] if j + 1 < len(paras) else None
                if after is not None and after.indent > paras[j].indent and _is_term(paras[j]):
                    break  # a nested entry starts here
                desc.append(paras[j].text)
                j += 1
            out.append(definition(p.text.replace("\n", ", "), desc))
            i = j
            continue
        if (i > 0 and p.indent > paras[i - 1].indent and not _is_prose(p)) or (
            p.indent > 0 and _CODE_MARKS.search(p.lines[0])
        ):
            code, j = [p], i + 1
            while j < len(paras) and paras[j].indent >= p.indent and not _is_prose(paras[j]):
                code.append(paras[j])
                j += 1
            base = min(c.indent for c in code)
            body = "\n\n".join("\n".join(line[base:] for line in c.lines) for c in code)
            out.append(fence(body))
            i = j
            continue
        out.append(p.text)
        i += 1
    return "\n\n".join(out) + "\n"


# --- blocks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A piece of a chunk: ``kind`` is paragraph, code, definition or item (a list item).

    A definition has its ``term``; its ``text`` is the description.
    """

    kind: str
    text: str
    term: str = ""


def _list_definition(item: str) -> Block | None:
    m = _LIST_DEFINITION.match(item)
    if not m or len(m["desc"].split()) < 3:
        return None
    term = m["code"] or m["bold"] or m["plain"]
    if m["plain"] and not (m["plain"][:1].islower() or "." in m["plain"] or "_" in m["plain"]):
        return None  # "Note: ..." and other prose openers are not terms
    return Block("definition", m["desc"].strip(), term.strip())


def blocks(text: str) -> list[Block]:
    """The blocks of a chunk's text, in order; headings are not in chunk text.

    >>> [b.kind for b in blocks("Intro text.\\n\\n```\\nx = 1\\n```\\n\\n--all\\n: Fetch all.")]
    ['paragraph', 'code', 'definition']
    """
    out: list[Block] = []
    lines = text.split("\n")
    i = 0
    para: list[str] = []

    def close() -> None:
        if para:
            joined = " ".join(s.strip() for s in para)
            named = _NAME_LINE.match(joined) if len(para) == 1 else None
            if named:  # "git-rebase - Reapply commits on top of another base tip"
                out.append(Block("definition", named["desc"], named["term"]))
            else:
                out.append(Block("paragraph", joined))
            para.clear()

    while i < len(lines):
        line = lines[i]
        if m := FENCE.match(line):
            close()
            bar, body, i = m.group(1), [], i + 1
            while i < len(lines) and not lines[i].strip().startswith(bar):
                body.append(lines[i])
                i += 1
            out.append(Block("code", "\n".join(body)))
            i += 1
            continue
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and nxt.startswith(": "):
            close()
            desc, i = [], i + 1
            while i < len(lines) and lines[i].startswith(": "):
                desc.append(lines[i][2:].strip())
                i += 1
            out.append(Block("definition", " ".join(desc), line.strip()))
            continue
        if not line.strip() or line.lstrip().startswith("|") or _HEADING_LINE.match(line):
            close()
        elif item := _LIST_ITEM.match(line):
            close()
            body = [item.group(1)]
            while i + 1 < len(lines) and lines[i + 1].startswith("  ") and lines[i + 1].strip():
                i += 1
                body.append(lines[i].strip())
            joined = " ".join(body)
            out.append(_list_definition(joined) or Block("item", joined))
        else:
            para.append(line)
        i += 1
    close()
    return out
