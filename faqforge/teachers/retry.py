"""Which request failures are worth retrying, and how long to wait before the next try.

Transient: timeouts, connection errors, 408, 429 and 5xx: the same request may succeed
later. Any other 4xx (bad request, auth, not found, context too long) cannot, so it fails at
once. The wait doubles per attempt up to a cap, half of it random ("equal jitter"), so many
clients that failed together do not retry together; a server's ``Retry-After`` is honoured
up to the cap.
"""

from __future__ import annotations

import random

import openai


def is_transient(exc: BaseException) -> bool:
    """``is_transient(openai.APITimeoutError(...))`` → True; a 400 or 401 → False. A request
    past its total deadline (``TimeoutError``) is transient too."""
    if isinstance(exc, openai.APIConnectionError | TimeoutError):  # APITimeoutError is one
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 429) or exc.status_code >= 500
    return False


def backoff_delay(
    attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None
) -> float:
    """Seconds before retry ``attempt`` (0-based): in ``[d/2, d]``, ``d = min(cap, base·2^n)``."""
    ceiling = min(cap_s, base_s * 2**attempt)
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def retry_after_s(exc: BaseException, cap_s: float) -> float:
    """The server's ``Retry-After`` (seconds) or ``retry-after-ms``, capped; 0 when absent."""
    response = getattr(exc, "response", None)
    if response is None:
        return 0.0
    headers = response.headers
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return min(cap_s, float(ms) / 1000)
        if (seconds := headers.get("retry-after")) is not None:
            return min(cap_s, float(seconds))
    except ValueError:  # an HTTP date: rare, and the backoff still applies
        pass
    return 0.0
