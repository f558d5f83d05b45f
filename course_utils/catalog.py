"""The product catalog: records, validation, JSON load/save and the image renderer.

Introduced in 01_synthetic_catalog.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .errors import CourseError
from .files import image_stem, write_atomic

__all__ = [
    "COLOR_HEX",
    "DEFAULT_PRODUCTS",
    "IMAGE_SIZE",
    "MAX_TEXT_FIELD",
    "PATTERNS",
    "SHAPES",
    "default_catalog",
    "draw_item",
    "generate_catalog",
    "hex_to_rgb",
    "load_catalog",
    "Product",
    "product_from_dict",
    "render_catalog",
    "render_product",
    "save_catalog",
    "shape_polygon",
    "validate_catalog",
]

SHAPES = ("circle", "square", "rectangle", "triangle", "diamond", "hexagon", "star")
PATTERNS = ("solid", "striped", "dotted", "checkered")

#: Named colours the course (and the mini-CLIP's training data) knows, with a typical hex value.
COLOR_HEX = {
    "red": "#E74C3C",
    "blue": "#3498DB",
    "green": "#2ECC71",
    "yellow": "#F1C40F",
    "purple": "#9B59B6",
    "orange": "#E67E22",
    "teal": "#1ABC9C",
    "pink": "#E91E63",
    "black": "#222222",
    "gray": "#95A5A6",
    "brown": "#8D5524",
}

IMAGE_SIZE = 256
MAX_TEXT_FIELD = 200  # product text is data for a prompt: keep it short
_HEX_RE = re.compile(r"^#[0-9A-Fa-f]{6}$")
_FONT_PATH = Path(__file__).with_name("assets") / "DejaVuSans-Bold.ttf"


@dataclass(frozen=True)
class Product:
    """One catalog item. Every attribute is known, which is why the catalog is synthetic.

    Introduced in 01_synthetic_catalog.
    """

    name: str
    shape: str
    color: str
    color_name: str
    pattern: str
    price: float | None  # None only for a photo known by its file name (see from_file_name)
    category: str
    description: str = ""

    @classmethod
    def from_file_name(cls, stem: str) -> Product:
        """A product known only by its image's file name: a photo folder indexed without a catalog.json.

        Its look, pattern and category are ``"unknown"`` and its price ``None``: only the picture
        says what it is. Introduced in 03_image_retrieval (exercise: index your own photos).
        """
        return cls(_clean_text(stem) or "image", "unknown", "", "unknown", "unknown", None, "unknown")

    @property
    def slug(self) -> str:
        """The name of the product's image file, without ``.png``: ``Widget A`` -> ``widget_a``.

        Unique per product: see :func:`image_stem`.
        """
        return image_stem(self.name)

    def metadata_line(self) -> str:
        """One line describing the product, as it appears in an LLM prompt."""
        if self.price is None:
            return f"{self.name}: a photo; colour, shape, pattern, price and category unknown"
        line = (
            f"{self.name}: {self.color_name} {self.shape}, {self.pattern} pattern, "
            f"${self.price:.2f}, category {self.category}"
        )
        return f"{line}. {self.description}" if self.description else line

    def to_dict(self) -> dict:
        data = asdict(self)
        if not data["description"]:
            del data["description"]
        return data


DEFAULT_PRODUCTS: tuple[Product, ...] = (
    Product("Widget A", "circle", "#E74C3C", "red", "solid", 12.99, "widgets"),
    Product("Widget B", "square", "#3498DB", "blue", "striped", 24.50, "widgets"),
    Product("Gadget X", "triangle", "#2ECC71", "green", "solid", 8.75, "gadgets"),
    Product("Gadget Y", "circle", "#F1C40F", "yellow", "dotted", 15.00, "gadgets"),
    Product("Tool M", "rectangle", "#9B59B6", "purple", "solid", 34.99, "tools"),
    Product("Tool N", "diamond", "#E67E22", "orange", "striped", 19.25, "tools"),
    Product("Widget C", "circle", "#1ABC9C", "teal", "solid", 11.50, "widgets"),
    Product("Gadget Z", "square", "#E91E63", "pink", "dotted", 29.99, "gadgets"),
)


def default_catalog() -> list[Product]:
    """The course's eight-product catalog. Introduced in 01_synthetic_catalog."""
    return list(DEFAULT_PRODUCTS)


#: The product families of a generated catalog, each with its category.
FAMILIES = (("Widget", "widgets"), ("Gadget", "gadgets"), ("Tool", "tools"), ("Gizmo", "gizmos"))


def _code(i: int) -> str:
    """A, B, ..., Z, AA, AB, ...: the letter code of a family's i-th product."""
    code = ""
    i += 1
    while i:
        i, rest = divmod(i - 1, 26)
        code = chr(ord("A") + rest) + code
    return code


def generate_catalog(n: int = 40, seed: int = 0) -> list[Product]:
    """A random catalog of ``n`` products, the same for the same seed.

    Every look is drawn at random (shape, colour, pattern) and each colour gets a little jitter
    around its typical hex value, so a colour name stands for a range of shades; prices are
    distinct, between $2 and $80; names follow the default catalog ("Gadget C", "Gizmo F").
    Introduced in 10_what_the_pictures_add.
    """
    import numpy as np

    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 1000:
        raise CourseError(f"A generated catalog holds 1 to 1000 products, not {n!r}.")
    rng = np.random.default_rng([seed, 16])
    counts = [0] * len(FAMILIES)
    prices: set[float] = set()
    products = []
    for _ in range(n):
        family = int(rng.integers(len(FAMILIES)))
        word, category = FAMILIES[family]
        name = f"{word} {_code(counts[family])}"
        counts[family] += 1
        color_name = str(rng.choice(list(COLOR_HEX)))
        base = np.array(hex_to_rgb(COLOR_HEX[color_name]))
        rgb = np.clip(base + rng.integers(-14, 15, size=3), 0, 255)
        price = round(float(rng.uniform(2, 80)), 2)
        while price in prices:
            price = round(float(rng.uniform(2, 80)), 2)
        prices.add(price)
        products.append(
            Product(
                name=name,
                shape=str(rng.choice(SHAPES)),
                color="#" + "".join(f"{int(v):02X}" for v in rgb),
                color_name=color_name,
                pattern=str(rng.choice(PATTERNS)),
                price=price,
                category=category,
            )
        )
    return products


def _clean_text(value: str) -> str:
    """Drop control characters and squeeze whitespace: product text ends up inside prompts.

    NFC: a name typed as ``é`` and one typed as ``e`` + accent are one name.
    """
    value = unicodedata.normalize("NFC", value)
    value = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in value)
    return " ".join(value.split())[:MAX_TEXT_FIELD]


def _shown(value: object, limit: int = 40) -> str:
    """A short repr for a message: a 400-digit number is not worth printing whole."""
    try:
        text = repr(value)
    except ValueError:  # Python refuses to print integers of more than 4,300 digits
        text = f"an {type(value).__name__} too long to show"
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def product_from_dict(data: object, position: int | None = None) -> Product:
    """Build a validated :class:`Product` from a JSON object; errors name the product and field."""
    where = f"product #{position + 1}" if position is not None else "product"
    if not isinstance(data, dict):
        raise CourseError(f"{where}: expected a JSON object with the product's fields, got {type(data).__name__}.")
    name = data.get("name")
    if isinstance(name, str) and name.strip():
        where = f"{where} ({_clean_text(name)!r})"
    known = {f.name for f in fields(Product)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise CourseError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}.")
    required = [f.name for f in fields(Product) if f.name != "description"]
    missing = [f for f in required if f not in data or data[f] is None or data[f] == ""]
    if missing:
        raise CourseError(f"{where}: missing field(s) {', '.join(missing)}.")
    for key in ("name", "shape", "color", "color_name", "pattern", "category", "description"):
        if key in data and not isinstance(data[key], str):
            raise CourseError(f"{where}: field '{key}' must be a string.")
    clean = {k: _clean_text(data[k]) for k in ("name", "color_name", "category")}
    clean["description"] = _clean_text(data.get("description", ""))
    if not clean["name"]:
        raise CourseError(f"{where}: field 'name' is empty.")
    shape = data["shape"].strip().lower()
    if shape not in SHAPES:
        raise CourseError(f"{where}: field 'shape' is {data['shape']!r}; use one of {', '.join(SHAPES)}.")
    pattern = data["pattern"].strip().lower()
    if pattern not in PATTERNS:
        raise CourseError(f"{where}: field 'pattern' is {data['pattern']!r}; use one of {', '.join(PATTERNS)}.")
    color = data["color"].strip()
    if not _HEX_RE.match(color):
        raise CourseError(f"{where}: field 'color' is {color!r}; use a hex colour like '#E74C3C'.")
    price = data["price"]
    try:
        usable = not isinstance(price, bool) and isinstance(price, (int, float)) and 0 <= float(price) < math.inf
    except OverflowError:  # an integer with hundreds of digits
        usable = False
    if not usable:
        raise CourseError(f"{where}: field 'price' is {_shown(price)}; use a number >= 0 such as 12.99.")
    return Product(
        name=clean["name"],
        shape=shape,
        color=color.upper(),
        color_name=clean["color_name"].lower(),
        pattern=pattern,
        price=round(float(price), 2),
        category=clean["category"].lower(),
        description=clean["description"],
    )


def validate_catalog(items: Iterable[object]) -> list[Product]:
    """Validate a list of product objects (dicts or Products); names must be unique."""
    products: list[Product] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        product = product_from_dict(item.to_dict() if isinstance(item, Product) else item, i)
        key = product.name.casefold()
        if key in seen:
            raise CourseError(
                f"product #{i + 1} ({product.name!r}): duplicate name, already used by product #{seen[key] + 1}."
            )
        seen[key] = i
        products.append(product)
    if not products:
        raise CourseError("The catalog is empty: add at least one product.")
    return products


def load_catalog(path: str | os.PathLike) -> list[Product]:
    """Load and validate a ``catalog.json`` (a list of products). Introduced in 01_synthetic_catalog."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CourseError(f"Catalog file not found: {path}. Create it with `python -m course_utils catalog`.") from None
    except OSError as exc:
        raise CourseError(f"Cannot read catalog file {path}: {exc.strerror}.") from None
    except UnicodeDecodeError as exc:
        raise CourseError(f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8.") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CourseError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}.") from None
    except RecursionError:
        raise CourseError(f"{path} is nested too deeply to be a catalog.") from None
    except ValueError as exc:  # e.g. a number of more than 4,300 digits
        raise CourseError(f"{path} is not valid JSON ({exc}).") from None
    if isinstance(data, dict) and "products" in data:
        data = data["products"]
    if not isinstance(data, list):
        raise CourseError(f"{path}: expected a JSON list of products.")
    try:
        return validate_catalog(data)
    except CourseError as exc:
        raise CourseError(f"{path}: {exc}") from None


def save_catalog(products: Sequence[Product], path: str | os.PathLike) -> Path:
    """Save products as a ``catalog.json`` list."""
    products = validate_catalog(products)
    path = Path(path)
    text = json.dumps([p.to_dict() for p in products], indent=2, ensure_ascii=False) + "\n"
    write_atomic(path, text.encode("utf-8"))
    return path


# --------------------------------------------------------------------------- rendering


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(_FONT_PATH), size)


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    """``"#E74C3C"`` -> ``(231, 76, 60)``. Introduced in 01_synthetic_catalog."""
    color = color.lstrip("#")
    return tuple(int(color[i : i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]


def shape_polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    """Outline points of a shape centred at (cx, cy) with half-size r; None for a circle."""
    if shape == "circle":
        return None
    if shape == "square":
        pts = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    elif shape == "rectangle":
        pts = [(-1.25, -0.7), (1.25, -0.7), (1.25, 0.7), (-1.25, 0.7)]
    elif shape == "triangle":
        pts = [(0, -1.1), (1.15, 0.9), (-1.15, 0.9)]
    elif shape == "diamond":
        pts = [(0, -1.2), (0.85, 0), (0, 1.2), (-0.85, 0)]
    elif shape == "hexagon":
        pts = [(math.cos(math.pi / 3 * i), math.sin(math.pi / 3 * i)) for i in range(6)]
        pts = [(1.05 * x, 1.05 * y) for x, y in pts]
    elif shape == "star":
        pts = []
        for i in range(10):
            radius = 1.15 if i % 2 == 0 else 0.48
            angle = -math.pi / 2 + math.pi / 5 * i
            pts.append((radius * math.cos(angle), radius * math.sin(angle)))
    else:
        raise CourseError(f"Unknown shape {shape!r}; use one of {', '.join(SHAPES)}.")
    return [(cx + r * x, cy + r * y) for x, y in pts]


def _pattern_layer(pattern: str, size: int, scale: float) -> Image.Image | None:
    """A white-on-transparent pattern covering the whole canvas."""
    if pattern == "solid":
        return None
    layer = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(layer)
    step = max(4, round(18 * scale))
    if pattern == "striped":
        width = max(2, round(6 * scale))
        for y in range(0, size, step):
            draw.rectangle([0, y, size, y + width - 1], fill=255)
    elif pattern == "dotted":
        radius = max(2, round(4.5 * scale))
        for y in range(step // 2, size, step):
            for x in range(step // 2, size, step):
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=255)
    elif pattern == "checkered":
        for y in range(0, size, step):
            for x in range(0, size, step):
                if (x // step + y // step) % 2 == 0:
                    draw.rectangle([x, y, x + step - 1, y + step - 1], fill=255)
    else:
        raise CourseError(f"Unknown pattern {pattern!r}; use one of {', '.join(PATTERNS)}.")
    return layer


def draw_item(
    shape: str,
    color: str | tuple[int, int, int],
    pattern: str,
    top_label: str = "",
    bottom_label: str = "",
    *,
    size: int = IMAGE_SIZE,
    center: tuple[float, float] = (0.5, 0.53),
    radius: float = 0.3,
    background: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """Draw one shape with its pattern and labels; positions are fractions of ``size``.

    The catalog renderer and the mini-CLIP's training data both use this, so the model trains
    on the same kind of pictures it later searches.
    """
    rgb = hex_to_rgb(color) if isinstance(color, str) else color
    scale = size / IMAGE_SIZE
    image = Image.new("RGB", (size, size), background)
    mask = Image.new("L", (size, size), 0)
    cx, cy, r = center[0] * size, center[1] * size, radius * size
    points = shape_polygon(shape, cx, cy, r)
    mask_draw = ImageDraw.Draw(mask)
    if points is None:
        mask_draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
        mask_draw.polygon(points, fill=255)
    image.paste(rgb, mask=mask)
    layer = _pattern_layer(pattern, size, scale)
    if layer is not None:
        pattern_mask = Image.new("L", (size, size), 0)
        pattern_mask.paste(layer, mask=mask)
        image.paste((255, 255, 255), mask=pattern_mask)
    draw = ImageDraw.Draw(image)
    outline = max(2, round(3 * scale))
    if points is None:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=(0, 0, 0), width=outline)
    else:
        draw.line(points + [points[0]], fill=(0, 0, 0), width=outline, joint="curve")
    font = _font(max(8, round(22 * scale)))
    if top_label:
        draw.text((size / 2, 8 * scale), top_label, fill=(0, 0, 0), font=font, anchor="mt")
    if bottom_label:
        draw.text((size / 2, size - 8 * scale), bottom_label, fill=(0, 0, 0), font=font, anchor="mb")
    return image


def render_product(product: Product, size: int = IMAGE_SIZE) -> Image.Image:
    """Draw a product: its shape in its colour, the pattern, the name on top, the price below.

    Introduced in 01_synthetic_catalog.
    """
    return draw_item(product.shape, product.color, product.pattern, product.name, f"${product.price:.2f}", size=size)


def render_catalog(products: Sequence[Product], out_dir: str | os.PathLike) -> list[Path]:
    """Render every product to ``out_dir/<slug>.png`` and write ``out_dir/catalog.json``.

    Returns the image paths in catalog order. Introduced in 01_synthetic_catalog.
    """
    products = validate_catalog(products)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for product in products:
        path = out / f"{product.slug}.png"
        image = render_product(product)
        # fixed compression and no metadata: the same catalog gives byte-identical files
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=6)
        write_atomic(path, buffer.getvalue())
        paths.append(path)
    save_catalog(products, out / "catalog.json")
    return paths
