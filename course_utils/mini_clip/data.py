"""Training data for the mini-CLIP: catalog-style pictures and captions, generated on the fly.

Every picture is drawn by :func:`course_utils.catalog.draw_item`, the renderer the catalog uses, so
the model trains on the same kind of images it later searches. Each picture knows its attributes
(shape, colour, pattern); a caption mentions some of them in one of many wordings. Because the
attributes are known, the trainer can tell which captions in a batch truly describe which pictures.

Introduced in 07_train_your_own_clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..catalog import COLOR_HEX, IMAGE_SIZE, PATTERNS, SHAPES, draw_item, hex_to_rgb

__all__ = [
    "ADJ_TEMPLATES",
    "ATTRIBUTES",
    "COLOR_PHRASES",
    "COLOR_WORDS",
    "COLORS",
    "GENERIC_NOUNS",
    "MENTION_WEIGHTS",
    "MODEL_IMAGE_SIZE",
    "NP_TEMPLATES",
    "PATTERN_ADJECTIVES",
    "PATTERN_PHRASES",
    "PRODUCT_WORDS",
    "SHAPE_ADJECTIVES",
    "SHAPE_NOUNS",
    "attribute_codes",
    "build_pool",
    "caption_for",
    "ImagePool",
    "ItemSpec",
    "make_caption",
    "random_label",
    "render_item",
    "sample_item",
    "sample_mention",
]

#: The pixel size the mini-CLIP's vision tower sees (the processor resizes catalog images to it).
MODEL_IMAGE_SIZE = 128
COLORS = tuple(COLOR_HEX)
ATTRIBUTES = ("color", "shape", "pattern")

# ------------------------------------------------------------------ vocabulary (words per attribute)

COLOR_WORDS: dict[str, tuple[str, ...]] = {name: (name,) for name in COLORS}
COLOR_WORDS["gray"] = ("gray", "grey")

#: Shape words used as a noun ("a red circle") and as an adjective ("a round red item").
SHAPE_NOUNS: dict[str, tuple[tuple[str, str], ...]] = {
    "circle": (("circle", "circles"), ("disc", "discs")),
    "square": (("square", "squares"),),
    "rectangle": (("rectangle", "rectangles"),),
    "triangle": (("triangle", "triangles"),),
    "diamond": (("diamond", "diamonds"),),
    "hexagon": (("hexagon", "hexagons"),),
    "star": (("star", "stars"),),
}
SHAPE_ADJECTIVES: dict[str, tuple[str, ...]] = {
    "circle": ("round", "circular", "circle-shaped"),
    "square": ("square", "square-shaped"),
    "rectangle": ("rectangular", "rectangle-shaped", "oblong"),
    "triangle": ("triangular", "triangle-shaped"),
    "diamond": ("diamond-shaped", "diamond"),
    "hexagon": ("hexagonal", "hexagon-shaped", "six-sided"),
    "star": ("star-shaped", "starry", "star"),
}
PATTERN_ADJECTIVES: dict[str, tuple[str, ...]] = {
    "solid": ("solid", "plain", "solid-colored", "plain-colored", "unpatterned", "single-color"),
    "striped": ("striped", "stripy", "stripe-patterned"),
    "dotted": ("dotted", "polka-dot", "polka dot", "spotted", "dot-patterned"),
    "checkered": ("checkered", "checkerboard", "checked", "chequered", "check-patterned"),
}
PATTERN_PHRASES: dict[str, tuple[str, ...]] = {
    "solid": ("with no pattern", "with a solid fill", "in one plain color", "without a pattern", "with a plain fill"),
    "striped": ("with stripes", "with a striped pattern", "with horizontal stripes", "with white stripes"),
    "dotted": ("with dots", "with polka dots", "with a dotted pattern", "with spots", "with white dots"),
    "checkered": ("with checks", "with a checkerboard pattern", "with a checkered pattern", "with a check pattern"),
}
#: Colour phrases after the noun ("a circle in red").
COLOR_PHRASES = ("in {c}", "colored {c}", "in the color {c}", "that is {c}")
GENERIC_NOUNS = (
    ("item", "items"),
    ("product", "products"),
    ("thing", "things"),
    ("object", "objects"),
    ("one", "ones"),
    ("shape", "shapes"),
    ("piece", "pieces"),
    ("article", "articles"),
)
PRODUCT_WORDS = ("Widget", "Gadget", "Tool", "Gizmo", "Device", "Part", "Module", "Item", "Kit", "Unit", "Thing")

# Wrappers around a noun phrase: {s} singular ("a red circle"), {n} singular without an article,
# {p} plural ("red circles").
NP_TEMPLATES = (
    "{s}",
    "{s}",
    "{p}",
    "a photo of {s}",
    "a picture of {s}",
    "an image of {s}",
    "a product image of {s}",
    "show me {s}",
    "show me {p}",
    "show me your {p}",
    "i need {s}",
    "i want {s}",
    "i'm looking for {s}",
    "i am looking for {p}",
    "looking for {s}",
    "do you sell {p}?",
    "do you sell {s}?",
    "do you have {s}?",
    "do you have any {p}?",
    "what {p} do you have?",
    "what {p} do you sell?",
    "which {p} do you have?",
    "any {p}?",
    "find {s}",
    "find me {p}",
    "search for {s}",
    "is there {s}?",
    "are there any {p}?",
    "can i buy {s}?",
    "i'd like to buy {s}",
    "give me {s}",
    "list the {p}",
    "i want the {n}",
    "the {n}",
    "{s} please",
    "have you got {s}?",
    "recommend {s}",
    "where is the {n}?",
    "catalog item: {s}",
)
# Wrappers around an adjective predicate: {a} ("red", "red and striped").
ADJ_TEMPLATES = (
    "{a}",
    "{a}",
    "something {a}",
    "anything {a}?",
    "which products are {a}?",
    "which items are {a}?",
    "what products are {a}?",
    "what is {a}?",
    "products that are {a}",
    "items that are {a}",
    "the one that is {a}",
    "show me everything that is {a}",
    "i need something {a}",
    "do you sell anything {a}?",
    "do you have something {a}?",
    "is anything {a}?",
    "it is {a}",
    "a product that is {a}",
)


@dataclass(frozen=True)
class ItemSpec:
    """What one training picture shows; ``color`` is the colour name, ``rgb`` the jittered fill."""

    shape: str
    color: str
    pattern: str
    rgb: tuple[int, int, int]
    center: tuple[float, float]
    radius: float
    top_label: str
    bottom_label: str

    def attributes(self) -> dict[str, str]:
        return {"color": self.color, "shape": self.shape, "pattern": self.pattern}


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def random_label(rng: np.random.Generator) -> tuple[str, str]:
    """A product-like name ("Widget Q", "Gizmo 7") and a price ("$23.40"), as catalog images carry."""
    word = _pick(rng, PRODUCT_WORDS)
    if rng.random() < 0.6:
        suffix = chr(ord("A") + int(rng.integers(26)))
    else:
        suffix = str(int(rng.integers(1, 100)))
    price = f"${rng.uniform(1, 99):.2f}"
    return f"{word} {suffix}", price


def sample_item(rng: np.random.Generator) -> ItemSpec:
    """Draw random attributes, colour jitter, size, position and labels for one picture.

    Introduced in 07_train_your_own_clip.
    """
    shape = _pick(rng, SHAPES)
    color = _pick(rng, COLORS)
    pattern = _pick(rng, PATTERNS)
    base = np.array(hex_to_rgb(COLOR_HEX[color]), dtype=np.int64)
    # a little jitter so the model learns colour names, not one exact hex value
    rgb = tuple(int(v) for v in np.clip(base + rng.integers(-14, 15, size=3), 0, 255))
    # centred near where the catalog draws its products (0.5, 0.53), radius near 0.3
    center = (0.5 + rng.uniform(-0.06, 0.06), 0.53 + rng.uniform(-0.05, 0.05))
    radius = float(rng.uniform(0.22, 0.34))
    top, bottom = random_label(rng) if rng.random() < 0.92 else ("", "")
    return ItemSpec(shape, color, pattern, rgb, (float(center[0]), float(center[1])), radius, top, bottom)


def render_item(item: ItemSpec, size: int = MODEL_IMAGE_SIZE) -> Image.Image:
    """Draw the picture at the catalog's 256 px and shrink it as the processor would (bicubic).

    Introduced in 07_train_your_own_clip.
    """
    image = draw_item(
        item.shape,
        item.rgb,
        item.pattern,
        item.top_label,
        item.bottom_label,
        size=IMAGE_SIZE,
        center=item.center,
        radius=item.radius,
    )
    return image if size == IMAGE_SIZE else image.resize((size, size), Image.BICUBIC)


# ------------------------------------------------------------------ captions

#: How often a caption mentions each subset of attributes. Shape-only and shape pairs are
#: weighted up because shape is the attribute a small model learns last.
MENTION_WEIGHTS: dict[tuple[str, ...], float] = {
    ("color",): 0.08,
    ("shape",): 0.16,
    ("pattern",): 0.09,
    ("color", "shape"): 0.14,
    ("color", "pattern"): 0.09,
    ("shape", "pattern"): 0.14,
    ("color", "shape", "pattern"): 0.30,
}
_MENTION_KEYS = tuple(MENTION_WEIGHTS)
_MENTION_P = np.array([MENTION_WEIGHTS[k] for k in _MENTION_KEYS]) / sum(MENTION_WEIGHTS.values())


def sample_mention(rng: np.random.Generator) -> tuple[str, ...]:
    """Which attributes a caption will mention, drawn with :data:`MENTION_WEIGHTS`."""
    return _MENTION_KEYS[int(rng.choice(len(_MENTION_KEYS), p=_MENTION_P))]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _noun_phrase(rng: np.random.Generator, attrs: dict[str, str], plural: bool, article: bool = True) -> str:
    """A noun phrase such as "round yellow thing with dots" or "blue striped squares"."""
    pre: list[str] = []
    post: list[str] = []
    noun = None
    if "shape" in attrs:
        if rng.random() < 0.65:
            noun = _pick(rng, SHAPE_NOUNS[attrs["shape"]])[1 if plural else 0]
        else:
            pre.append(_pick(rng, SHAPE_ADJECTIVES[attrs["shape"]]))
    if "color" in attrs:
        word = _pick(rng, COLOR_WORDS[attrs["color"]])
        if rng.random() < 0.85:
            pre.append(word)
        else:
            post.append(_pick(rng, COLOR_PHRASES).format(c=word))
    if "pattern" in attrs:
        if rng.random() < 0.6:
            pre.append(_pick(rng, PATTERN_ADJECTIVES[attrs["pattern"]]))
        else:
            post.append(_pick(rng, PATTERN_PHRASES[attrs["pattern"]]))
    if noun is None:
        # "a red one" reads well, "a one with stripes" does not
        nouns = GENERIC_NOUNS if pre else tuple(n for n in GENERIC_NOUNS if n[0] != "one")
        noun = _pick(rng, nouns)[1 if plural else 0]
    # adjective order varies, so the text tower learns a bag of attributes, not one word order
    rng.shuffle(pre)
    if len(post) > 1:
        rng.shuffle(post)
    words = " ".join(pre + [noun])
    if post:
        words += " " + " and ".join(post) if rng.random() < 0.3 else " " + " ".join(post)
    if plural or not article:
        return words
    return f"{_article(words)} {words}" if rng.random() < 0.85 else words


def _adjective_phrase(rng: np.random.Generator, attrs: dict[str, str]) -> str:
    """A predicate such as "red", "striped and round", "blue, dotted and square"."""
    words = []
    for key, value in attrs.items():
        if key == "shape":
            words.append(_pick(rng, SHAPE_ADJECTIVES[value]))
        elif key == "color":
            words.append(_pick(rng, COLOR_WORDS[value]))
        else:
            words.append(_pick(rng, PATTERN_ADJECTIVES[value]))
    rng.shuffle(words)
    if len(words) == 1:
        return words[0]
    if rng.random() < 0.5:
        return " ".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def make_caption(rng: np.random.Generator, attrs: dict[str, str]) -> str:
    """One caption that mentions exactly the attributes in ``attrs`` (any non-empty subset).

    >>> make_caption(np.random.default_rng(0), {"color": "red", "pattern": "striped"})  # doctest: +SKIP
    'do you have any red items with stripes?'
    """
    if rng.random() < 0.25:
        text = _pick(rng, ADJ_TEMPLATES).format(a=_adjective_phrase(rng, attrs))
    else:
        template = _pick(rng, NP_TEMPLATES)
        plural = "{p}" in template
        phrase = _noun_phrase(rng, attrs, plural, article="{n}" not in template)
        text = template.replace("{s}", phrase).replace("{p}", phrase).replace("{n}", phrase)
    if rng.random() < 0.3:
        text = text[0].upper() + text[1:]
    return text


def caption_for(rng: np.random.Generator, item_attributes: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A caption for a picture, and the attributes it mentions (what the loss checks other pictures for).

    Introduced in 07_train_your_own_clip.
    """
    mention = sample_mention(rng)
    attrs = {key: item_attributes[key] for key in mention}
    return make_caption(rng, attrs), attrs


# ------------------------------------------------------------------ image pool


@dataclass
class ImagePool:
    """Pre-rendered training pictures: ``pixels`` (n, 128, 128, 3) uint8 and their attribute codes.

    Rendering is as costly as a training step on a laptop CPU, so the trainer draws batches from a
    pool rendered once, with fresh captions every time.
    """

    pixels: np.ndarray
    shape: np.ndarray
    color: np.ndarray
    pattern: np.ndarray

    def __len__(self) -> int:
        return len(self.pixels)

    def attributes(self, index: int) -> dict[str, str]:
        return {
            "color": COLORS[self.color[index]],
            "shape": SHAPES[self.shape[index]],
            "pattern": PATTERNS[self.pattern[index]],
        }


def build_pool(size: int, seed: int = 0, progress: bool = False) -> ImagePool:
    """Render ``size`` random pictures with a seeded generator (same seed, same pixels)."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng([seed, 1])
    pixels = np.empty((size, MODEL_IMAGE_SIZE, MODEL_IMAGE_SIZE, 3), dtype=np.uint8)
    codes = np.empty((size, 3), dtype=np.int64)
    for i in tqdm(range(size), disable=not progress, desc="Rendering training images", unit="img"):
        item = sample_item(rng)
        pixels[i] = np.asarray(render_item(item))
        codes[i] = (SHAPES.index(item.shape), COLORS.index(item.color), PATTERNS.index(item.pattern))
    return ImagePool(pixels, codes[:, 0], codes[:, 1], codes[:, 2])


def attribute_codes(attrs: dict[str, str]) -> tuple[int, int, int]:
    """(shape, colour, pattern) indices, -1 for an attribute the caption does not mention."""
    return (
        SHAPES.index(attrs["shape"]) if "shape" in attrs else -1,
        COLORS.index(attrs["color"]) if "color" in attrs else -1,
        PATTERNS.index(attrs["pattern"]) if "pattern" in attrs else -1,
    )
