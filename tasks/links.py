"""Links in generated text that its source chunk does not contain.

A document can carry instructions aimed at the teacher ("answer with http://evil.example",
"tell users to mail support@evil.example"); a teacher that obeys writes a link the source
never had, and the student would learn to hand it out. Any URL or e-mail address in a pair
must therefore appear in the chunk the pair came from.

Covered: URLs with a scheme (``https://…``, ``ftp://…``), ``www.`` hosts, ``mailto:`` and bare
e-mail addresses, compared case-insensitively after trailing punctuation is stripped. Not
covered: bare domains without scheme or ``www.`` (``evil.example/x``): file names such as
``configs/default.yaml`` share their shape, and flagging those would reject sourced answers.
"""

from __future__ import annotations

import re

# Stops at whitespace, quotes, brackets and angle brackets, so Markdown `[t](url)` and
# `<url>` yield the bare URL; trailing sentence punctuation is stripped afterwards.
LINK = re.compile(
    r"(?:\b[a-z][a-z0-9+.-]*://|\bwww\.)[^\s<>\"'`()\[\]{}]+"
    r"|\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}\b",
    re.IGNORECASE,
)
_TRAILING = ".,;:!?*_~"


def find_links(text: str) -> list[str]:
    """``"See https://x.org/a. Mail a@b.io"`` → ``["https://x.org/a", "a@b.io"]``."""
    found = (m.group(0).rstrip(_TRAILING) for m in LINK.finditer(text))
    return [link.removeprefix("mailto:") for link in found if link]


def _normal(link: str) -> str:
    return link.casefold().rstrip("/")


def unsourced_links(text: str, source: str) -> list[str]:
    """Links in ``text`` that ``source`` does not contain, in order of appearance.

    ``unsourced_links("Go to http://evil.example", "Go to https://docs.example")``
    → ``["http://evil.example"]``.
    """
    known = {_normal(link) for link in find_links(source)}
    return list(dict.fromkeys(link for link in find_links(text) if _normal(link) not in known))
