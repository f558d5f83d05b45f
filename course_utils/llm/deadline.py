"""A deadline for one request: the whole answer in time, however slowly a server sends it.

The SDKs' timeouts bound each read, not the request: a server that sends one byte a second, or a
body that never ends, never trips them. :func:`within` runs the request in a worker thread and, at
the deadline, closes the client (the worker's pending read then fails and it ends by itself) and
gives up with a timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .base import ProviderFailure

__all__ = ["within"]

T = TypeVar("T")


def within(seconds: float, request: Callable[[], T], close: Callable[[], Any]) -> T:
    """``request()``'s result, or :class:`ProviderFailure` ("timed out") once ``seconds`` have passed.

    Whatever ``request`` raises is raised here. ``close`` is called at the deadline to end the
    abandoned request (e.g. the SDK client's ``close``).
    """
    done = threading.Event()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = request()
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="llm-request", daemon=True).start()
    if not done.wait(seconds):
        try:
            close()
        except Exception:  # a client closed while in use may complain; the request is abandoned anyway
            pass
        raise ProviderFailure(f"timed out after {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
