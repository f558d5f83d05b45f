"""The offline answerer: a rule-based stand-in for an LLM, clearly labelled as one.

It answers from the catalog entries in the prompt and, where an entry does not state a product's
look, from the picture attached for it: colour, shape and pattern read by zero-shot CLIP
(:mod:`.seeing`). It cannot read the name or price printed on a picture.
Introduced in 04_multimodal_generation (rows) and 10_what_the_pictures_add (pictures).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..errors import CourseError
from ..prompts import image_ranks_of, parse_context, question_of, says_no_match, sent_a_photo
from ..query import QueryIntent, parse_question
from .base import LLMResponse
from .seeing import AttributeReader, default_reader

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


def answer_offline(prompt: str, images: Sequence[Any] = (), reader: AttributeReader | None = None) -> str:
    """Answer from the catalog entries inside ``prompt`` and the pictures attached, by plain rules.

    It lists the products that match the question's colour/shape/pattern/category words, applies
    cheapest / most expensive / price limits among them, and says so when none matches. Where
    the entries state every product's look, the pictures are not needed and the answer is built
    from the entries alone. Where they do not, image *i* (entry [*i*]) is read with ``reader``
    (default: the bundled mini-CLIP; the prompt may say which entries the images show), and what it
    saw is quoted. A condition it cannot check
    (a price no entry gives, a look with no picture) is named as such. Asked about the shopper's
    photo (sent first) with no colour, shape, pattern or price words ("do you have something like
    this?"), it names the retrieved products as the closest to the photo, or says that none looks
    like it when retrieval found no match. It never names a product that is not in the prompt.
    """
    entries = parse_context(prompt)
    photo = sent_a_photo(prompt)
    images = list(images)[1:] if photo else list(images)  # the shopper's photo is no catalog product
    if entries is None:
        return (
            f"{OFFLINE_LABEL} I have no catalog knowledge: without retrieved products I cannot say "
            "what this shop sells. Ask again with retrieval (RAG) turned on."
        )
    if not entries:
        return f"{OFFLINE_LABEL} No products were retrieved, so I cannot answer from the catalog."
    categories = sorted({str(e.get("category", "")) for e in entries if e.get("category")})
    intent = parse_question(question_of(prompt), categories)
    if photo and not (intent.has_attributes or intent.has_price):
        return _about_the_photo(entries, says_no_match(prompt))
    if all(_LOOK <= e["fields"] for e in entries):
        return _answer_from_entries(entries, intent)
    return _answer_with_gaps(entries, intent, images, image_ranks_of(prompt), reader, first_image=1 + photo)


def _about_the_photo(entries: list[dict], no_match: bool) -> str:
    """ "Do you have something like this?": the retrieved products are the catalog's closest to the photo."""
    if no_match:
        return (
            f"{OFFLINE_LABEL} Nothing in the catalog looks like your photo. The closest retrieved products "
            f"are: {'; '.join(_describe_any(e) for e in entries)}."
        )
    others = f" Next closest: {'; '.join(_describe_any(e) for e in entries[1:])}." if len(entries) > 1 else ""
    return f"{OFFLINE_LABEL} The product most like your photo is {_describe_any(entries[0])}.{others}"


def _by_price(matches: list[dict], intent: QueryIntent) -> tuple[str, str, dict] | None:
    """For "cheapest" / "most expensive": the word, the scope ("'red' " or ""), and the product it names.

    None when the question sets no order or no match has a price. Among equal prices the
    better-ranked product wins (the sort is stable).
    """
    if not intent.sort:
        return None
    priced = sorted(
        (e for e in matches if e.get("price") is not None), key=lambda e: e["price"], reverse=intent.sort == "desc"
    )
    if not priced:
        return None
    asked = intent.describe(sort=False)
    word = "cheapest" if intent.sort == "asc" else "most expensive"
    return word, f"'{asked}' " if asked != "anything" else "", priced[0]


def _answer_from_entries(entries: list[dict], intent: QueryIntent) -> str:
    """Every entry states its look: the answer comes from the text alone."""
    matches = [e for e in entries if intent.matches(e)]
    if not matches:
        return (
            f"{OFFLINE_LABEL} None of the {len(entries)} retrieved products matches "
            f"'{intent.describe()}'. The closest retrieved were: {_listing(entries)}."
        )
    extreme = _by_price(matches, intent)
    if extreme:
        word, scope, first = extreme
        return f"{OFFLINE_LABEL} The {word} of the {len(matches)} retrieved {scope}products is {_describe(first)}."
    if not (intent.has_attributes or intent.has_price):
        return f"{OFFLINE_LABEL} The retrieved products are: {_listing(entries)}."
    return f"{OFFLINE_LABEL} Retrieved products matching '{intent.describe()}': {_listing(matches)}."


# --------------------------------------------------------------------------- entries that leave gaps

_LOOK = frozenset({"color", "shape", "pattern"})
_SEEN_LISTED = 10  # pictures described one by one when none matches; the rest are counted


def _describe_any(entry: dict) -> str:
    """``Widget A (seen in image 1: a red circle, solid; $12.99)``; the price only where one was given."""
    if entry.get("seen") is None:
        if _LOOK <= entry["fields"]:
            return _describe(entry)
        price = "price unknown" if entry.get("price") is None else f"${entry['price']:.2f}"
        return f"{entry.get('name', '?')} ({price})"
    price = f"; ${entry['price']:.2f}" if entry.get("price") is not None else ""
    return f"{entry.get('name', '?')} (seen in image {entry['image']}: {entry['seen'].describe()}{price})"


def _unchecked(intent: QueryIntent, entries: list[dict], has_images: bool) -> tuple[QueryIntent, list[str]]:
    """The question without the conditions no entry can be checked for, and why each cannot."""

    def known(key: str) -> bool:
        return any(e.get(key) is not None for e in entries)

    reasons, changes = [], {}
    no_look = "no entry records it and no pictures were attached" if not has_images else "no picture shows it"
    for word, wanted, key in (
        ("colour", intent.colors, "color_name"),
        ("shape", intent.shapes, "shape"),
        ("pattern", intent.patterns, "pattern"),
    ):
        if wanted and not known(key):
            reasons.append(f"the {word} ({no_look})")
            changes[{"color_name": "colors", "shape": "shapes", "pattern": "patterns"}[key]] = frozenset()
    if intent.categories and not known("category"):
        reasons.append("the category (no entry gives one, and a picture does not show it)")
        changes["categories"] = frozenset()
    if intent.has_price and not known("price"):
        reasons.append("the price (no entry gives one, and I cannot read the price printed on a picture)")
        changes.update(min_price=None, max_price=None, sort=None)
    return replace(intent, **changes), reasons


def _answer_with_gaps(
    entries: list[dict],
    intent: QueryIntent,
    images: list[Any],
    image_ranks: list[int] | None,
    reader: AttributeReader | None,
    first_image: int = 1,
) -> str:
    """Some entries do not state the look: read it from their pictures, and say what stays unknown.

    ``first_image`` is the number the prompt gives the first catalog image (2 after the shopper's photo).
    """
    entries = [dict(e) for e in entries]
    # image j shows entry ranks[j] where the prompt says so, else entry j + 1
    ranks = image_ranks if image_ranks is not None else [e["rank"] for e in entries[: len(images)]]
    picture_of = {rank: j for j, rank in enumerate(ranks[: len(images)])}
    pictured = [(picture_of[e["rank"]], e) for e in entries if e["rank"] in picture_of and not _LOOK <= e["fields"]]
    preface = ""
    if pictured:
        reader = reader or default_reader()
        for (j, entry), seen in zip(pictured, reader.read([images[j] for j, _ in pictured]), strict=True):
            entry.update(
                color_name=seen.color, shape=seen.shape, pattern=seen.pattern, seen=seen, image=j + first_image
            )
        preface = (
            f" I read colour, shape and pattern from the {len(pictured)} picture(s) with CLIP ({reader.model_id}); "
            "I cannot read the name or price printed on them."
        )
    checked, reasons = _unchecked(intent, entries, bool(images))
    cannot = f" I cannot check {' or '.join(reasons)}." if reasons else ""
    where = "pictures" if pictured else "retrieved products"
    asks = checked.has_attributes or checked.has_price
    if reasons and not asks:
        return f"{OFFLINE_LABEL}{preface}{cannot} So I cannot tell which of the {len(entries)} {where} answer the question."
    if not asks:
        return f"{OFFLINE_LABEL}{preface} The products I was sent are: {'; '.join(_describe_any(e) for e in entries)}."
    matches = [e for e in entries if checked.matches(e)]
    if not matches:
        looks = [f"image {e['image']}: {e['seen'].describe()}" for e in entries if e.get("seen") is not None]
        more = f"; and {len(looks) - _SEEN_LISTED} more" if len(looks) > _SEEN_LISTED else ""
        saw = f" I saw {'; '.join(looks[:_SEEN_LISTED])}{more}." if looks else ""
        return (
            f"{OFFLINE_LABEL}{preface} None of the {len(entries)} {where} matches '{checked.describe()}'.{saw}{cannot}"
        )
    extreme = _by_price(matches, checked)
    if extreme:
        word, scope, first = extreme
        return (
            f"{OFFLINE_LABEL}{preface} The {word} of the {len(matches)} {scope}products I was sent is "
            f"{_describe_any(first)}.{cannot}"
        )
    listing = "; ".join(_describe_any(e) for e in matches)
    return f"{OFFLINE_LABEL}{preface} Products matching '{checked.describe()}': {listing}.{cannot}"


class OfflineAnswerer:
    """A stand-in for an LLM that answers by rules from the prompt's catalog entries and pictures.

    It reads a picture only where the entries do not state the product's look, with zero-shot
    CLIP (``reader``, default the bundled mini-CLIP); it cannot read printed labels, and it says
    it is not an LLM. The cascade puts it last, and the course uses it when no provider is
    configured. Introduced in 04_multimodal_generation.
    """

    provider = OFFLINE_PROVIDER
    model = OFFLINE_MODEL
    pins_provider = True  # one provider, one model: a pin to them holds, any other pin is refused

    def __init__(self, reader: AttributeReader | None = None) -> None:
        self.reader = reader

    def __repr__(self) -> str:
        return "OfflineAnswerer()"

    def _check_pin(self, provider: str | None) -> None:
        if provider is not None and provider.strip().lower() != OFFLINE_PROVIDER:
            raise CourseError(f"The offline answerer cannot be pinned to {provider!r}: it is the only provider it has.")

    def generate(
        self, prompt: str, system_prompt: str | None = None, provider: str | None = None, **kwargs: Any
    ) -> LLMResponse:
        self._check_pin(provider)
        return LLMResponse(answer_offline(prompt, reader=self.reader), self.provider, self.model)

    def generate_multimodal(
        self,
        prompt: str,
        images: Sequence[Any],
        system_prompt: str | None = None,
        provider: str | None = None,
        **kwargs: Any,
    ) -> LLMResponse:
        self._check_pin(provider)
        return LLMResponse(answer_offline(prompt, list(images), self.reader), self.provider, self.model)
