"""Question quality signals shared by validation and the question-quality bench.

``generic_subject``: a question whose subject is a section name or a page title instead of a
thing a user asks about: "What should I know about OPTIONS in git-rebase(1) Manual Page?",
"What is NAME in git-clone(1) Manual Page?", "What are examples?". Such questions were 67%
of a refresh over git's manuals before the teacher learned to name options and variables;
validation bounds their share (``validate.max_generic_question_share``).
Not covered: generic subjects in other languages, or phrased without a section name.
"""

from __future__ import annotations

import re

from faqforge.teachers.extractive import is_generic

# Man pages' section names, written in capitals inside a question.
_CAPS_SECTION = re.compile(
    r"\b(NAME|SYNOPSIS|DESCRIPTION|OPTIONS|EXAMPLES?|SEE ALSO|CONFIGURATION|ENVIRONMENT|FILES"
    r"|BUGS|AUTHORS?|NOTES|DISCUSSION|OUTPUT|HOOKS|EXIT STATUS|RETURN VALUE)\b"
)
_TITLE = re.compile(r"\bManual Page\b|\w\(\d\w*\)", re.I)
# The subject of a template question: "What should I know about X (in Y)?", "What is X?"
_SUBJECT = re.compile(
    r"^(?:what should i know about|what else is worth knowing about|what is there to know about"
    r"|what (?:is|are)|how would you describe|can you explain what)\s+(?:the\s+)?"
    r"(?P<subject>.+?)(?:\s+(?:is|are))?(?:\s+in\s+.+)?\?$",
    re.I,
)


def generic_subject(question: str) -> bool:
    """Whether ``question`` is built on a section name or a page title.

    ``generic_subject("What is NAME in git-clone(1) Manual Page?")`` → True;
    ``generic_subject("What does the `--autostash` option of `git-rebase` do?")`` → False
    """
    if _CAPS_SECTION.search(question) or _TITLE.search(question):
        return True
    m = _SUBJECT.match(question.strip())
    return m is not None and is_generic(m["subject"])
