"""Versioned prompt files: ``faqforge/prompts/<name>/system.md`` and ``user.md``.

A prompt's version is a short sha256 of both files' content, so editing either one
changes every cache key built on it, and each QA pair records the exact prompt it came from.
The user file is a ``string.Template`` (``$name`` placeholders), so JSON braces in a prompt
or in a document never need escaping.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from faqforge.storage import sha256_text

PROMPTS_DIR = Path(__file__).parent / "prompts"


@dataclass(frozen=True)
class Prompt:
    name: str
    system: str
    user: str
    version: str

    def render_user(self, **values: object) -> str:
        """Fill the user template; a missing placeholder is a KeyError naming it."""
        return Template(self.user).substitute(values)


def load_prompt(name: str, root: Path = PROMPTS_DIR) -> Prompt:
    """``load_prompt("generate_qa")`` → the prompt with ``version`` like ``"3f2a9c41d0be"``."""
    folder = root / name
    try:
        system = (folder / "system.md").read_text(encoding="utf-8")
        user = (folder / "user.md").read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"prompt {name!r} needs system.md and user.md in {folder}: {exc.filename} is missing"
        ) from None
    version = sha256_text(system + "\0" + user, length=12)
    return Prompt(name=name, system=system.strip(), user=user.strip(), version=version)


# Chat-template control strings (Llama 3, ChatML, Llama 2, Mistral): a tokenizer turns them
# into real control tokens wherever they appear, so a document could end its own turn and
# open a system one. A zero-width space after the first character keeps them readable, inert.
_CONTROL = re.compile(r"<\|[\w.-]*\|>|</?s>|\[/?INST\]|<</?SYS>>")


def neutralise(text: str) -> str:
    """``"<|eot_id|>"`` → ``"<\u200b|eot_id|>"``: no longer a special token to any tokenizer."""
    return _CONTROL.sub(lambda m: f"{m.group(0)[0]}\u200b{m.group(0)[1:]}", text)


def quoted(text: str) -> str:
    """A document-derived field (source, headings) as one JSON string: no line breaks."""
    return json.dumps(neutralise(text), ensure_ascii=False)


def fence(text: str) -> str:
    """Wrap ``text`` in a backtick fence longer than any backtick run inside it.

    A document containing a 3-backtick fence gets a 4-backtick one, so it cannot close it;
    chat control strings inside it are neutralised, so it cannot end its turn either.
    """
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    bar = "`" * max(3, longest + 1)
    return f"{bar}document\n{neutralise(text)}\n{bar}"
