"""Pacing: at most ``<PREFIX>_RPM`` requests a minute to a provider, by spacing them out.

A class on free tiers runs into per-key limits of about ten requests a minute. With ``GEMINI_RPM=10``
a cascade starts its Gemini requests at least six seconds apart, so a burst of calls stays under the
limit instead of hitting it (and waiting out a 429). Waits are printed, one line each.
"""

from __future__ import annotations

import threading
import time

from .. import config
from .providers import Provider

__all__ = ["Clock", "Pacer"]


class Clock:
    """Real time for the cascade's waits; tests pass one that only pretends to sleep."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class Pacer:
    """Spaces the requests of each provider by ``60 / <PREFIX>_RPM`` seconds (no setting: no spacing)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._next: dict[str, float] = {}  # provider name -> the earliest start of its next request
        self._lock = threading.Lock()

    def wait_turn(self, provider: Provider) -> None:
        """Return when ``provider`` may be asked; waits (and says so) when its last request was too recent."""
        rpm = config.provider_rpm(provider.env_prefix)
        if rpm is None:
            return
        with self._lock:
            now = self.clock.now()
            start = max(now, self._next.get(provider.name, now))
            self._next[provider.name] = start + 60.0 / rpm
        if start > now:
            print(
                f"[LLM] {provider.display_name}: waiting {start - now:.1f} s to stay under {provider.env_prefix}_RPM={rpm:g}."
            )
            self.clock.sleep(start - now)
