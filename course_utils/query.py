"""Reading a shopper's question: attribute words, price limits and superlatives.

Plain rules a student can read. The hybrid retrieval planner and the offline answerer both use
them, so they understand a question the same way. Introduced in 08_evaluating_image_rag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

COLOR_WORDS = {
    "red": "red", "blue": "blue", "green": "green", "yellow": "yellow", "purple": "purple",
    "violet": "purple", "orange": "orange", "teal": "teal", "turquoise": "teal", "pink": "pink",
    "black": "black", "gray": "gray", "grey": "gray", "brown": "brown",
}  # fmt: skip
SHAPE_WORDS = {
    "circle": "circle", "circles": "circle", "circular": "circle", "round": "circle",
    "square": "square", "squares": "square",
    "rectangle": "rectangle", "rectangles": "rectangle", "rectangular": "rectangle",
    "triangle": "triangle", "triangles": "triangle", "triangular": "triangle",
    "diamond": "diamond", "diamonds": "diamond",
    "hexagon": "hexagon", "hexagons": "hexagon", "hexagonal": "hexagon",
    "star": "star", "stars": "star", "star-shaped": "star",
}  # fmt: skip
PATTERN_WORDS = {
    "solid": "solid", "plain": "solid",
    "striped": "striped", "stripes": "striped", "stripe": "striped", "stripy": "striped",
    "dotted": "dotted", "dots": "dotted", "dot": "dotted", "polka-dot": "dotted", "polka": "dotted",
    "spotted": "dotted",
    "checkered": "checkered", "checkerboard": "checkered", "checks": "checkered",
    "checked": "checkered", "chequered": "checkered",
}  # fmt: skip

_CHEAPEST = re.compile(r"\b(cheapest|least expensive|lowest[- ]priced?|lowest price|most affordable|least costly)\b")
_PRICIEST = re.compile(r"\b(most expensive|priciest|highest[- ]priced?|highest price|most costly|dearest)\b")
_NUMBER = r"\$?\s*(\d+(?:\.\d+)?)"
_BETWEEN = re.compile(rf"\bbetween\s+{_NUMBER}\s*(?:and|to|-)\s*{_NUMBER}")
_UNDER = re.compile(rf"\b(?:under|below|less than|cheaper than|at most|up to|no more than|max(?:imum)?)\s+{_NUMBER}")
_OVER = re.compile(rf"\b(?:over|above|more than|at least|pricier than|min(?:imum)?)\s+{_NUMBER}")
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?")


@dataclass(frozen=True)
class QueryIntent:
    """What a question asks for, besides its look: attributes, price bounds, a sort order."""

    colors: frozenset[str] = frozenset()
    shapes: frozenset[str] = frozenset()
    patterns: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    min_price: float | None = None
    max_price: float | None = None
    sort: str | None = None  # "asc" (cheapest first) or "desc" (most expensive first)
    words: tuple[str, ...] = field(default=(), repr=False)

    @property
    def has_visual(self) -> bool:
        """Whether the question names a look (colour, shape, pattern) that CLIP can judge."""
        return bool(self.colors or self.shapes or self.patterns)

    @property
    def has_attributes(self) -> bool:
        return self.has_visual or bool(self.categories)

    @property
    def has_price(self) -> bool:
        return self.min_price is not None or self.max_price is not None or self.sort is not None

    def matches(self, product: dict, visual: bool = True) -> bool:
        """True if a product (a dict with color_name, shape, pattern, category, price) fits.

        ``visual=False`` checks only category and price, leaving the look to the images.
        """
        checks = [(self.categories, product.get("category"))]
        if visual:
            checks += [
                (self.colors, product.get("color_name")),
                (self.shapes, product.get("shape")),
                (self.patterns, product.get("pattern")),
            ]
        if any(wanted and value not in wanted for wanted, value in checks):
            return False
        price = product.get("price")
        if self.min_price is not None and (price is None or price < self.min_price):
            return False
        return not (self.max_price is not None and (price is None or price > self.max_price))

    def describe(self, sort: bool = True) -> str:
        """A short human phrase for what was understood, e.g. ``red, circle, under $20``."""
        parts = sorted(self.colors) + sorted(self.patterns) + sorted(self.shapes) + sorted(self.categories)
        if self.min_price is not None and self.max_price is not None:
            parts.append(f"${self.min_price:g}-${self.max_price:g}")
        elif self.max_price is not None:
            parts.append(f"under ${self.max_price:g}")
        elif self.min_price is not None:
            parts.append(f"over ${self.min_price:g}")
        if self.sort and sort:
            parts.append("cheapest first" if self.sort == "asc" else "most expensive first")
        return ", ".join(parts) or "anything"


def _singular(word: str) -> str:
    return word[:-1] if word.endswith("s") and len(word) > 3 else word


def parse_question(question: str, categories: tuple[str, ...] | list[str] = ()) -> QueryIntent:
    """Find colour, shape, pattern and category words, price limits and superlatives.

    ``categories`` are the catalog's category names (``widgets``, ``tools``...); a question
    matches them in singular or plural. Introduced in 08_evaluating_image_rag.
    """
    text = question.lower()
    words = tuple(_WORD.findall(text))
    known_categories = {_singular(c.lower()): c.lower() for c in categories}
    found_categories = {known_categories[_singular(w)] for w in words if _singular(w) in known_categories}
    min_price = max_price = None
    if match := _BETWEEN.search(text):
        low, high = sorted((float(match.group(1)), float(match.group(2))))
        min_price, max_price = low, high
    else:
        if match := _UNDER.search(text):
            max_price = float(match.group(1))
        if match := _OVER.search(text):
            min_price = float(match.group(1))
    sort = "asc" if _CHEAPEST.search(text) else "desc" if _PRICIEST.search(text) else None
    return QueryIntent(
        colors=frozenset(COLOR_WORDS[w] for w in words if w in COLOR_WORDS),
        shapes=frozenset(SHAPE_WORDS[w] for w in words if w in SHAPE_WORDS),
        patterns=frozenset(PATTERN_WORDS[w] for w in words if w in PATTERN_WORDS),
        categories=frozenset(found_categories),
        min_price=min_price,
        max_price=max_price,
        sort=sort,
        words=words,
    )
