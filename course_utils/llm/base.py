"""What every LLM in the course shares: the interface, the answer record and a provider's failure.

Any object with ``generate(prompt, system_prompt=None, ...)`` and
``generate_multimodal(prompt, images, system_prompt=None, ...)`` that returns something with
``.text``, ``.provider`` and ``.model`` can answer: the course's cascade, the offline answerer,
an ``llm_cascade`` cascade, a test double. Introduced in 04_multimodal_generation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .keys import one_line

__all__ = ["LLM", "Attempt", "LLMResponse", "ProviderFailure", "Usage", "can_pin_provider", "status_failure"]


@dataclass(frozen=True)
class Attempt:
    """One provider tried by a cascade: ``outcome`` is ``answered``, ``cached``, ``skipped`` or ``failed``."""

    provider: str
    outcome: str
    reason: str = ""


@dataclass(frozen=True)
class Usage:
    """The tokens a provider says one request used; None where it does not say.

    ``image_tokens`` is filled only where the provider counts image tokens apart (Gemini's
    per-modality counts); other providers report the prompt as one number.
    """

    prompt_tokens: int | None = None
    output_tokens: int | None = None
    image_tokens: int | None = None


@dataclass(frozen=True)
class LLMResponse:
    """An answer and who gave it. ``attempts`` lists the providers a cascade tried first;
    ``usage`` is what the provider reported about tokens (None: nothing reported).

    ``cached`` is True when the answer was stored by an earlier, identical call (no request made).

    Introduced in 06_exercises (where you build an LLM of your own that returns one).
    """

    text: str
    provider: str
    model: str
    attempts: tuple[Attempt, ...] = ()
    cached: bool = False
    usage: Usage | None = None


@runtime_checkable
class LLM(Protocol):
    """The interface :class:`~course_utils.rag.ImageRAG` asks of an LLM.

    Pins are part of it: an LLM whose ``pins_provider`` is True accepts ``provider=`` and
    ``model=`` and answers with exactly that provider and model. One without it (an
    ``llm_cascade`` cascade applies ``model=`` to every provider in turn) is never pinned.
    """

    def generate(self, prompt: str, system_prompt: str | None = None, **kwargs: Any) -> Any: ...

    def generate_multimodal(
        self, prompt: str, images: Sequence[Any], system_prompt: str | None = None, **kwargs: Any
    ) -> Any: ...


def can_pin_provider(llm: Any) -> bool:
    """Whether ``llm`` promises that ``provider=``/``model=`` pin one provider and its model."""
    return getattr(llm, "pins_provider", False) is True


class ProviderFailure(Exception):
    """A provider did not answer: the cascade records ``reason`` and moves on.

    ``rejected_key`` marks a key the service refused (worth a warning to the student); ``status``
    is the HTTP status, and ``retry_after`` the seconds the service asked to wait, if it said.
    """

    def __init__(
        self, reason: str, rejected_key: bool = False, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rejected_key = rejected_key
        self.status = status
        self.retry_after = retry_after


def status_failure(
    code: int, message: str, model: str, key_env: str | None, retry_after: float | None = None
) -> ProviderFailure:
    """The failure for an HTTP error status; 401/403 mark the key as rejected."""
    detail = f": {one_line(message)}" if message else ""
    if code in (401, 403):
        check = f"; check {key_env}" if key_env else ""
        reason = f"key rejected (HTTP {code}{check}){detail}"
    elif code == 429:
        reason = f"rate limited or out of quota (HTTP 429){detail}"
    elif code == 404:
        reason = f"model {model!r} not found (HTTP 404){detail}"
    elif code >= 500:
        reason = f"server error (HTTP {code}){detail}"
    else:
        reason = f"request refused (HTTP {code}){detail}"
    return ProviderFailure(reason, rejected_key=code in (401, 403), status=code, retry_after=retry_after)
