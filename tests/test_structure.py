"""faqforge's markdown subset: plain text read for headings, code and definition entries, and
the blocks every stage after ingest sees."""

from __future__ import annotations

import pytest

from faqforge.structure import Block, blocks, definition, fence, text_to_markdown

# CPython's documentation topics look like this (pydoc_data.topics): underlined headings,
# indented literal blocks, and man-page style entries (a term over an indented description).
TOPIC = """\
Mapping Types
*************

A mapping maps keys to values.  These are the operations:

   d = {"a": 1}

len(d)

   Return the number of items in the dictionary *d*.

d[key]

   Return the item of *d* with key *key*.  Raises a "KeyError" if
   *key* is not in the map.

   Another paragraph about it.

Views
=====

Views are dynamic.
"""


def test_plain_text_headings_code_and_entries():
    md = text_to_markdown(TOPIC)
    assert md.startswith("# Mapping Types\n")
    assert "\n## Views\n" in md  # a second underline character is the next level
    assert '```\nd = {"a": 1}\n```' in md  # indented literal block → fenced code
    assert "len(d)\n: Return the number of items in the dictionary *d*." in md
    # Both description paragraphs stay with their term, each on its own ": " line.
    assert (
        'd[key]\n: Return the item of *d* with key *key*. Raises a "KeyError" if *key* is not in '
        "the map.\n: Another paragraph about it." in md
    )


def test_a_prose_lead_in_is_not_a_term():
    md = text_to_markdown("The simple form is equivalent to\n\n   if debug:\n       fail()\n")
    assert md == "The simple form is equivalent to\n\n```\nif debug:\n    fail()\n```\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Intro text.\n\n```\n# a comment\n\nx = 1\n```", [("paragraph", ""), ("code", "")]),
        ("--onto <newbase>\n: Starting point.\n: More.", [("definition", "--onto <newbase>")]),
        ("- `chunk.max_tokens`: the chunk size in tokens.", [("definition", "chunk.max_tokens")]),
        ("- **dedup** — removes repeated pairs, best first.", [("definition", "dedup")]),
        ("- Note: this is a remark.", [("item", "")]),  # "Note" opens prose, names no term
        ("git-rebase - Reapply commits on top of another base tip", [("definition", "git-rebase")]),
        ("| a | b |\n| - | - |", []),  # table rows are not prose
    ],
)
def test_blocks(text, expected):
    assert [(b.kind, b.term) for b in blocks(text)] == expected


def test_definition_and_code_blocks_keep_their_text():
    (entry,) = blocks("--all\n: Fetch all remotes.\n: Not only origin.")
    assert entry == Block("definition", "Fetch all remotes. Not only origin.", "--all")
    _, code = blocks("Run:\n\n```\nmake\n\nmake test\n```")
    assert code.text == "make\n\nmake test"  # blank lines inside code are code


def test_fence_outgrows_backticks_inside():
    assert fence("a ``` b") == "````\na ``` b\n````"
    assert definition("  -v,   --verbose ", ["Be  verbose.", ""]) == "-v, --verbose\n: Be verbose."
