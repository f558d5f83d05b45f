"""Does an answer stick to the evidence? Product names and prices checked against the catalog.

Introduced in 08_evaluating_image_rag.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .catalog import Product

__all__ = ["check_grounding", "GroundingReport"]

_PRICE = re.compile(r"\$\s?(\d+(?:,\d{3})*(?:\.\d{1,2})?)")
_PRICE_REACH = 80  # characters after a product name within which a price belongs to it


@dataclass(frozen=True)
class GroundingReport:
    """What an answer names that the evidence does not support.

    ``unknown_products``: names shaped like catalog names that the catalog does not have.
    ``not_retrieved``: real products the answer names although they were not retrieved.
    ``wrong_prices``: prices stated right after a product name that differ from its price.
    """

    ok: bool
    mentioned: tuple[str, ...]
    unknown_products: tuple[str, ...]
    not_retrieved: tuple[str, ...]
    wrong_prices: tuple[dict, ...]

    def to_dict(self) -> dict:
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def _name_pattern(catalog: Sequence[Product]) -> re.Pattern | None:
    """Names shaped like the catalog's: a family word ('Widget') and a capitalised code ('D', 'Pro 3000')."""
    families = sorted({p.name.split()[0] for p in catalog if len(p.name.split()) == 2}, key=len, reverse=True)
    if not families:
        return None
    words = "|".join(re.escape(f) for f in families)
    return re.compile(rf"\b(?:{words})s?\s+(?:[A-Z][\w-]*|\d+)(?:\s\d+)?(?![\w-])")


def check_grounding(answer: str, hits: Sequence, catalog: Sequence[Product]) -> GroundingReport:
    """Find the product names and prices ``answer`` mentions and flag what the hits do not back.

    ``hits`` are the retrieved :class:`~course_utils.retrieval.Hit` objects (or Products);
    ``catalog`` is every product that exists. Introduced in 08_evaluating_image_rag.
    """
    retrieved = {getattr(h, "product", h).name for h in hits}
    by_name = {p.name.casefold(): p for p in catalog}
    spans: list[tuple[int, int, str]] = []  # (start, end, name as written)
    for product in catalog:
        for match in re.finditer(rf"(?<![\w-]){re.escape(product.name)}(?![\w-])", answer, flags=re.I):
            spans.append((match.start(), match.end(), product.name))
    pattern = _name_pattern(catalog)
    unknown = []
    if pattern:
        for match in pattern.finditer(answer):
            text = " ".join(match.group(0).split())
            singular = re.sub(r"^(\w+?)s\s", r"\1 ", text)
            if text.casefold() not in by_name and singular.casefold() not in by_name:
                unknown.append(text)
                spans.append((match.start(), match.end(), text))
    spans.sort()
    mentioned = tuple(dict.fromkeys(name for _, _, name in spans if name.casefold() in by_name))
    not_retrieved = tuple(name for name in mentioned if name not in retrieved)
    wrong_prices = []
    for i, (_, end, name) in enumerate(spans):
        product = by_name.get(name.casefold())
        if product is None:
            continue
        stop = min(end + _PRICE_REACH, spans[i + 1][0] if i + 1 < len(spans) else len(answer))
        match = _PRICE.search(answer, end, stop)
        if match:
            said = float(match.group(1).replace(",", ""))
            if product.price is None or abs(said - product.price) > 0.005:  # no price known: none is backed
                wrong_prices.append({"product": product.name, "said": said, "actual": product.price})
    unknown_t = tuple(dict.fromkeys(unknown))
    return GroundingReport(
        ok=not (unknown_t or not_retrieved or wrong_prices),
        mentioned=mentioned,
        unknown_products=unknown_t,
        not_retrieved=not_retrieved,
        wrong_prices=tuple(wrong_prices),
    )
