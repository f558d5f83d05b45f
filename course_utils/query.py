"""Reading a shopper's question: attribute words, price limits and superlatives.

Plain rules a student can read. The hybrid retrieval planner and the offline answerer both use
them, so they understand a question the same way. Introduced in 08_evaluating_image_rag.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .catalog import COLOR_HEX, SHAPES, Product

__all__ = ["COLOR_WORDS", "PATTERN_WORDS", "SHAPE_WORDS", "generate_queries", "parse_question", "QueryIntent"]

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


# --------------------------------------------------------------------------- questions a catalog asks itself

_SHAPE_PHRASES = {
    "circle": ("circle", "round"), "square": ("square", "square"), "rectangle": ("rectangle", "rectangular"),
    "triangle": ("triangle", "triangular"), "diamond": ("diamond", "diamond-shaped"),
    "hexagon": ("hexagon", "hexagonal"), "star": ("star", "star-shaped"),
}  # fmt: skip
_PATTERN_PHRASES = {
    "solid": ("plain", "solid"), "striped": ("stripes", "striped"),
    "dotted": ("dots", "dotted"), "checkered": ("checks", "checkered"),
}  # fmt: skip
_COLOR_TEMPLATES = (
    "{c} products", "What {c} products do you have?", "Show me something {c}.",
    "I need a {c} product. What are my options?",
)  # fmt: skip
_SHAPE_TEMPLATES = ("{a} products", "Do you sell anything {a}?", "a {n}", "I am looking for something {a}.")
_PATTERN_TEMPLATES = ("{a} products", "Which products have {n}?", "Do you sell {a} items?")
_CATEGORY_TEMPLATES = ("Show me your {g}.",)
_COMBO_TEMPLATES = ("a {x} {y}", "Do you have a {x} {y}?")


def generate_queries(products: Sequence[Product]) -> list[dict[str, Any]]:
    """Labelled queries made from the catalog itself: the attributes say what is relevant.

    Each query carries ``type`` (color, shape, pattern, category, combination or absent) and its
    relevant product names; ``absent`` queries ask for a colour, shape or pattern the catalog lacks,
    or for a colour + shape pair that no product has.
    Introduced in 08_evaluating_image_rag.
    """
    queries: list[dict[str, Any]] = []

    def add(kind: str, text: str, relevant: Sequence[Product]) -> None:
        queries.append({"query": text, "relevant": [p.name for p in relevant], "type": kind})

    def having(**attrs: str) -> list[Product]:
        return [p for p in products if all(getattr(p, k) == v for k, v in attrs.items())]

    for color in sorted({p.color_name for p in products}):
        for template in _COLOR_TEMPLATES:
            add("color", template.format(c=color), having(color_name=color))
    for shape in sorted({p.shape for p in products}):
        noun, adjective = _SHAPE_PHRASES[shape]
        for template in _SHAPE_TEMPLATES:
            add("shape", template.format(a=adjective, n=noun), having(shape=shape))
    for pattern in sorted({p.pattern for p in products}):
        noun, adjective = _PATTERN_PHRASES[pattern]
        for template in _PATTERN_TEMPLATES:
            add("pattern", template.format(a=adjective, n=noun), having(pattern=pattern))
    for category in sorted({p.category for p in products}):
        for template in _CATEGORY_TEMPLATES:
            add("category", template.format(g=category), having(category=category))
    pairs = sorted({(p.color_name, p.shape) for p in products})
    for color, shape in pairs:
        for template in _COMBO_TEMPLATES:
            add(
                "combination",
                template.format(x=color, y=_SHAPE_PHRASES[shape][0]),
                having(color_name=color, shape=shape),
            )
    for color, pattern in sorted({(p.color_name, p.pattern) for p in products}):
        add(
            "combination", f"{_PATTERN_PHRASES[pattern][1]} {color} products", having(color_name=color, pattern=pattern)
        )
    # absent: single attributes the catalog lacks, and colour + shape pairs no product has
    have = {p.color_name for p in products}, {p.shape for p in products}, {p.pattern for p in products}
    for color in (c for c in COLOR_HEX if c not in have[0]):
        for template in _COLOR_TEMPLATES:
            add("absent", template.format(c=color), [])
    for shape in (s for s in SHAPES if s not in have[1]):
        for template in _SHAPE_TEMPLATES:
            add("absent", template.format(a=_SHAPE_PHRASES[shape][1], n=_SHAPE_PHRASES[shape][0]), [])
    for pattern in (p for p in _PATTERN_PHRASES if p not in have[2]):
        for template in _PATTERN_TEMPLATES:
            add("absent", template.format(a=_PATTERN_PHRASES[pattern][1], n=_PATTERN_PHRASES[pattern][0]), [])
    for i, color in enumerate(COLOR_HEX):
        for shape in (SHAPES[i % len(SHAPES)], SHAPES[(i + 3) % len(SHAPES)]):
            if not having(color_name=color, shape=shape):
                for template in _COMBO_TEMPLATES:
                    add("absent", template.format(x=color, y=_SHAPE_PHRASES[shape][0]), [])
    return queries
