"""The LLM interface, its response record, and the offline rule-based answerer.

Any object with ``generate(prompt, system_prompt=None)`` and
``generate_multimodal(prompt, images, system_prompt=None)`` that returns something with
``.text``, ``.provider`` and ``.model`` can answer (an ``llm_cascade`` cascade, the course's own
cascade, a test double). Introduced in 04_multimodal_generation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .prompts import parse_context, question_of
from .query import parse_question


@dataclass(frozen=True)
class Attempt:
    """One provider tried by a cascade: ``outcome`` is ``answered``, ``skipped`` or ``failed``."""

    provider: str
    outcome: str
    reason: str = ""


@dataclass(frozen=True)
class LLMResponse:
    """An answer and who gave it. ``attempts`` lists the providers a cascade tried first.

    Introduced in 06_exercises.
    """

    text: str
    provider: str
    model: str
    attempts: tuple[Attempt, ...] = ()


@runtime_checkable
class LLM(Protocol):
    def generate(self, prompt: str, system_prompt: str | None = None, **kwargs: Any) -> Any: ...

    def generate_multimodal(
        self, prompt: str, images: Sequence[Any], system_prompt: str | None = None, **kwargs: Any
    ) -> Any: ...


OFFLINE_PROVIDER = "offline"
OFFLINE_MODEL = "rule-based"
OFFLINE_LABEL = "[offline, rule-based — no LLM]"


def _describe(entry: dict) -> str:
    price = f"${entry['price']:.2f}" if entry.get("price") is not None else "price unknown"
    look = " ".join(str(entry.get(k)) for k in ("color_name", "shape") if entry.get(k))
    return f"{entry.get('name', '?')} ({look}, {entry.get('pattern', '?')}, {price})"


def _listing(entries: list[dict]) -> str:
    return "; ".join(_describe(e) for e in entries)


def answer_offline(prompt: str) -> str:
    """Answer from the catalog entries inside ``prompt`` alone, by plain rules.

    It lists the retrieved products that match the question's colour/shape/pattern/category
    words, applies cheapest / most expensive / price limits among them, and says so when none
    matches. It never names a product that is not in the prompt.
    """
    entries = parse_context(prompt)
    if entries is None:
        return (
            f"{OFFLINE_LABEL} I have no catalog knowledge: without retrieved products I cannot say "
            "what this shop sells. Ask again with retrieval (RAG) turned on."
        )
    if not entries:
        return f"{OFFLINE_LABEL} No products were retrieved, so I cannot answer from the catalog."
    categories = sorted({str(e.get("category", "")) for e in entries if e.get("category")})
    intent = parse_question(question_of(prompt), categories)
    matches = [e for e in entries if intent.matches(e)]
    if not matches:
        return (
            f"{OFFLINE_LABEL} None of the {len(entries)} retrieved products matches "
            f"'{intent.describe()}'. The closest retrieved were: {_listing(entries)}."
        )
    if intent.sort:
        priced = [e for e in matches if e.get("price") is not None]
        priced.sort(key=lambda e: e["price"], reverse=intent.sort == "desc")
        word = "cheapest" if intent.sort == "asc" else "most expensive"
        asked = intent.describe(sort=False)
        scope = f"'{asked}' " if asked != "anything" else ""
        if priced:
            return (
                f"{OFFLINE_LABEL} The {word} of the {len(matches)} retrieved {scope}products is {_describe(priced[0])}."
            )
    if not (intent.has_attributes or intent.has_price):
        return f"{OFFLINE_LABEL} The retrieved products are: {_listing(entries)}."
    return f"{OFFLINE_LABEL} Retrieved products matching '{intent.describe()}': {_listing(matches)}."


class OfflineAnswerer:
    """A stand-in for an LLM that answers by rules from the prompt's catalog entries.

    It looks at no pixels and says it is not an LLM. The cascade puts it last, and the course
    uses it when no provider is configured. Introduced in 04_multimodal_generation.
    """

    provider = OFFLINE_PROVIDER
    model = OFFLINE_MODEL

    def __repr__(self) -> str:
        return "OfflineAnswerer()"

    def generate(self, prompt: str, system_prompt: str | None = None, **kwargs: Any) -> LLMResponse:
        return LLMResponse(answer_offline(prompt), self.provider, self.model)

    def generate_multimodal(
        self, prompt: str, images: Sequence[Any], system_prompt: str | None = None, **kwargs: Any
    ) -> LLMResponse:
        return self.generate(prompt, system_prompt)
