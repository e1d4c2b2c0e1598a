"""PII-looking strings (emails, phone numbers, API keys and tokens) and web boilerplate.

A model fine-tuned on a pair learns to repeat it, so a secret or a personal address in a pair
can leak through the FAQ model. These are patterns, not a PII classifier: they catch the
common shapes (``jane@example.com``, ``+44 20 7946 0958``, ``sk-…``, ``ghp_…``, ``AKIA…``,
JWTs, ``api_key=…``) and miss names, street addresses and free-form identifiers.
"""

from __future__ import annotations

import re

PATTERNS: dict[str, re.Pattern[str]] = {
    "email": re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}\b", re.IGNORECASE),
    # Digit groups joined by spaces, dots or dashes, optionally +country and (area): 9-15
    # digits in all (checked below), so versions, dates and counts do not match.
    "phone": re.compile(
        r"(?<![\w.+-])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,5}(?:[\s.-]\d{2,5}){1,4}"
        r"(?![\w-]|\.\d)"
    ),
    "secret": re.compile(
        "|".join(
            [
                r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{20,}",  # OpenAI/Stripe style
                r"\bgh[pousr]_[A-Za-z0-9]{30,}",  # GitHub tokens
                r"\bhf_[A-Za-z0-9]{30,}",  # Hugging Face tokens
                r"\bxox[abprs]-[A-Za-z0-9-]{10,}",  # Slack tokens
                r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key ids
                r"\beyJ[\w-]{10,}\.eyJ[\w-]{10,}\.[\w-]{10,}",  # JWTs
                r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----",
                # key=value with a long opaque value (letters and digits mixed)
                r"(?i:\b(?:api[_-]?key|secret|token|password|passwd)\b\s*[:=]\s*['\"]?)"
                r"(?=[A-Za-z0-9_\-+/]*\d)(?=[A-Za-z0-9_\-+/]*[A-Za-z])[A-Za-z0-9_\-+/]{16,}",
            ]
        )
    ),
}
_ISO_DATE = re.compile(r"^\d{4}[-.]\d{2}[-.]\d{2}$")

BOILERPLATE = re.compile(
    r"\b(?:all rights reserved|copyright\s*(?:©|\(c\))|click here|cookie (?:policy|settings)|"
    r"accept (?:all )?cookies|subscribe to our|sign up for our newsletter|"
    r"skip to (?:main )?content|"
    r"back to top|lorem ipsum|terms of (?:use|service)|privacy policy|page \d+ of \d+|"
    r"share on (?:twitter|facebook|linkedin)|this page was last (?:edited|updated)|"
    r"last updated|part of the [\w()-]+ suite|table of contents)\b",
    re.IGNORECASE,
)


# A date inside the digits ("2024-05-31 00", "31/05/2024"), or a clock time right after them
# ("... 00:35:55 UTC"): a timestamp, not a number to call.
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4}")
_CLOCK = re.compile(r"^:\d{2}")


def _is_phone(match: re.Match[str]) -> bool:
    found = match.group()
    digits = sum(c.isdigit() for c in found)
    timestamp = _DATE.search(found) or _CLOCK.match(match.string[match.end() :])
    return 9 <= digits <= 15 and not _ISO_DATE.match(found) and not timestamp


def find_pii(text: str) -> list[str]:
    """Kinds of PII-looking strings in ``text``, sorted: ``"mail jo@x.org"`` → ``["email"]``."""
    kinds = []
    for kind, pattern in PATTERNS.items():
        matches = list(pattern.finditer(text))
        if kind == "phone":
            matches = [m for m in matches if _is_phone(m)]
        if matches:
            kinds.append(kind)
    return sorted(kinds)


def redact(text: str) -> str:
    """``text`` with every PII-looking string replaced by ``[EMAIL]``, ``[PHONE]``, ``[SECRET]``."""
    for kind, pattern in PATTERNS.items():

        def mask(match: re.Match[str], kind: str = kind) -> str:
            if kind == "phone" and not _is_phone(match):
                return match.group()
            return f"[{kind.upper()}]"

        text = pattern.sub(mask, text)
    return text


def has_boilerplate(text: str) -> bool:
    """``"All rights reserved."``, ``"Click here to subscribe"``: navigation or legal filler."""
    return BOILERPLATE.search(text) is not None
