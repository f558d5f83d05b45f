"""Waiting out a rate limit: bounded retries on 429 and 503 for a call that has nowhere else to go.

A call pinned to one provider (the blind half of a comparison, a panel's chosen provider), or one
whose provider is the last the cascade can ask, cannot fall through to another provider. When that
provider answers 429 (rate limited) or 503 (overloaded), the call waits as long as the service asks
(``Retry-After``, or the ``RetryInfo`` delay of Gemini's error; otherwise 2 s, then 4, 8, ...) and
asks again, for at most ``COURSE_LLM_MAX_WAIT`` seconds in all (and at most :data:`MAX_RETRIES`
times), with one printed line per wait.
A call that has a next provider never waits here: it moves on at once, as before.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .base import ProviderFailure

__all__ = ["FIRST_WAIT", "MAX_RETRIES", "RETRY_STATUSES", "gemini_retry_delay", "patiently", "retry_after_header"]

T = TypeVar("T")

RETRY_STATUSES = (429, 503)
FIRST_WAIT = 2.0  # seconds, when the service names no delay; doubled on each further wait
MAX_RETRIES = 5  # however short the waits a service asks for ("Retry-After: 0" forever)
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)s\s*")


def _seconds(value: float) -> float | None:
    return value if math.isfinite(value) and value >= 0 else None


def retry_after_header(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date (None: absent or unreadable)."""
    if not value:
        return None
    try:
        return _seconds(float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def gemini_retry_delay(details: Any) -> float | None:
    """Seconds from Gemini's error JSON: ``{"@type": "...google.rpc.RetryInfo", "retryDelay": "37s"}``."""
    error = details.get("error", details) if isinstance(details, dict) else {}
    entries = error.get("details") if isinstance(error, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and str(entry.get("@type", "")).endswith("RetryInfo"):
            match = _DURATION.fullmatch(str(entry.get("retryDelay", "")))
            if match:
                return _seconds(float(match.group(1)))
    return None


def patiently(ask: Callable[[], T], who: str, max_wait: float, sleep: Callable[[float], Any]) -> T:
    """``ask()``, asked again after each 429/503 while the waits add up to at most ``max_wait`` seconds.

    ``who`` names the provider in the printed line; ``sleep`` waits (a test passes a fake one).
    """
    waited, attempt = 0.0, 0
    while True:
        try:
            return ask()
        except ProviderFailure as failure:
            if failure.status not in RETRY_STATUSES or max_wait <= 0:
                raise
            delay = failure.retry_after if failure.retry_after is not None else FIRST_WAIT * 2**attempt
            if waited + delay > max_wait or attempt == MAX_RETRIES:
                so_far = f"waited {waited:g} s; " if waited else ""
                limit = (
                    f"{delay:g} s more would pass COURSE_LLM_MAX_WAIT={max_wait:g}"
                    if attempt < MAX_RETRIES
                    else f"asked {MAX_RETRIES + 1} times"
                )
                raise ProviderFailure(
                    f"{failure.reason} ({so_far}{limit})", status=failure.status, retry_after=failure.retry_after
                ) from None
            state = "rate limited" if failure.status == 429 else "overloaded"
            print(f"[LLM] {who} is {state} (HTTP {failure.status}): waiting {delay:g} s, then asking again.")
            sleep(delay)
            waited, attempt = waited + delay, attempt + 1
