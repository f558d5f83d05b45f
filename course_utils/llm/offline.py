"""The offline answerer: a rule-based stand-in for an LLM, clearly labelled as one.

Introduced in 04_multimodal_generation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import CourseError
from ..prompts import parse_context, question_of, says_no_match, sent_a_photo
from ..query import parse_question
from .base import LLMResponse

__all__ = ["OFFLINE_LABEL", "OFFLINE_MODEL", "OFFLINE_PROVIDER", "OfflineAnswerer", "answer_offline"]


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
    matches. Asked about the shopper's photo ("do you have something like this?") without such
    words, it names the retrieved products as the closest to the photo, or says that none looks
    like it when retrieval found no match. It never names a product that is not in the prompt.
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
        if sent_a_photo(prompt):
            return _about_the_photo(entries, says_no_match(prompt))
        return f"{OFFLINE_LABEL} The retrieved products are: {_listing(entries)}."
    return f"{OFFLINE_LABEL} Retrieved products matching '{intent.describe()}': {_listing(matches)}."


def _about_the_photo(entries: list[dict], no_match: bool) -> str:
    """Answer "do you have something like this?": the retrieved products are the catalog's closest to the photo."""
    if no_match:
        return (
            f"{OFFLINE_LABEL} Nothing in the catalog looks like your photo. The closest retrieved products "
            f"are: {_listing(entries)}."
        )
    others = f" Next closest: {_listing(entries[1:])}." if len(entries) > 1 else ""
    return f"{OFFLINE_LABEL} The product most like your photo is {_describe(entries[0])}.{others}"


class OfflineAnswerer:
    """A stand-in for an LLM that answers by rules from the prompt's catalog entries.

    It looks at no pixels and says it is not an LLM. The cascade puts it last, and the course
    uses it when no provider is configured. Introduced in 04_multimodal_generation.
    """

    provider = OFFLINE_PROVIDER
    model = OFFLINE_MODEL
    pins_provider = True  # one provider, one model: a pin to them holds, any other pin is refused

    def __repr__(self) -> str:
        return "OfflineAnswerer()"

    def generate(
        self, prompt: str, system_prompt: str | None = None, provider: str | None = None, **kwargs: Any
    ) -> LLMResponse:
        if provider is not None and provider.strip().lower() != OFFLINE_PROVIDER:
            raise CourseError(f"The offline answerer cannot be pinned to {provider!r}: it is the only provider it has.")
        return LLMResponse(answer_offline(prompt), self.provider, self.model)

    def generate_multimodal(
        self,
        prompt: str,
        images: Sequence[Any],
        system_prompt: str | None = None,
        provider: str | None = None,
        **kwargs: Any,
    ) -> LLMResponse:
        return self.generate(prompt, system_prompt, provider=provider)
