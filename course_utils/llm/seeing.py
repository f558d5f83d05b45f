"""What the offline answerer sees in a picture: colour, shape and pattern, by zero-shot CLIP.

Zero-shot classification turns retrieval around. Instead of ranking pictures for one sentence,
it ranks sentences for one picture: one short sentence per value an attribute can take ("a red
product", "a circle", "a striped product"), embedded once with CLIP's text tower, and the
picture's embedding picks the nearest sentence of each attribute. No labels, no training.

It looks with the bundled mini-CLIP unless it is given another CLIP: the mini-CLIP was trained
on pictures drawn exactly like the catalog's, so it reads them well, and it has never seen a
photograph, so it reads nothing else. It cannot read the printed name and price either: CLIP
matches pictures with sentences, it does not transcribe text.
Introduced in 10_what_the_pictures_add.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..catalog import COLOR_HEX, PATTERNS, SHAPES, Product
from ..embeddings import BUNDLED_MODEL_DIR, load_clip
from ..errors import CourseError
from ..images import open_image

__all__ = ["ATTRIBUTE_PROMPTS", "AttributeReader", "Seen", "default_reader"]

#: One sentence per value, as a shopper would say it; the words the mini-CLIP was trained on.
ATTRIBUTE_PROMPTS: dict[str, dict[str, str]] = {
    "color": {color: f"a {color} product" for color in COLOR_HEX},
    "shape": {shape: f"a {shape}" for shape in SHAPES},
    "pattern": {
        "solid": "a plain solid-colored product",
        "striped": "a striped product",
        "dotted": "a dotted product",
        "checkered": "a checkered product",
    },
}
assert tuple(ATTRIBUTE_PROMPTS["pattern"]) == PATTERNS


@dataclass(frozen=True)
class Seen:
    """What one picture shows, as read from its pixels: ``Seen("red", "circle", "solid")``.

    Introduced in 10_what_the_pictures_add.
    """

    color: str
    shape: str
    pattern: str

    def describe(self) -> str:
        """``a red circle, solid``."""
        article = "an" if self.color[:1] in "aeiou" else "a"
        return f"{article} {self.color} {self.shape}, {self.pattern}"


def _pixels_and_key(image: Any) -> tuple[Any, str | None]:
    """A PIL-openable source and a content key for the cache (None for a PIL image)."""
    data = getattr(image, "data", None)  # an EncodedImage from the cascade
    if isinstance(data, bytes):
        return data, hashlib.sha256(data).hexdigest()
    if isinstance(image, (bytes, bytearray)):
        return bytes(image), hashlib.sha256(bytes(image)).hexdigest()
    if isinstance(image, (str, os.PathLike)):
        try:
            raw = Path(image).read_bytes()  # the bytes are both the picture and its cache key
        except OSError:
            return image, None  # open_image says why the file cannot be used
        return raw, hashlib.sha256(raw).hexdigest()
    return image, None


class AttributeReader:
    """Reads colour, shape and pattern from pictures by zero-shot classification with a CLIP.

    ``clip`` is a :class:`~course_utils.embeddings.CLIPEmbedder`; by default the bundled
    mini-CLIP, loaded on first use. Pictures already read are remembered by their bytes.
    Introduced in 10_what_the_pictures_add.
    """

    def __init__(self, clip: Any = None) -> None:
        self._clip = clip
        self._classes: dict[str, tuple[list[str], np.ndarray]] | None = None
        self._seen: dict[str, Seen] = {}

    def __repr__(self) -> str:
        model = getattr(self._clip, "model_id", "bundled mini-CLIP (not loaded yet)")
        return f"AttributeReader(clip={model!r})"

    @property
    def clip(self) -> Any:
        if self._clip is None:
            self._clip = load_clip(str(BUNDLED_MODEL_DIR), device="cpu")
        return self._clip

    @property
    def model_id(self) -> str:
        return str(self.clip.model_id)

    def _prompts(self) -> dict[str, tuple[list[str], np.ndarray]]:
        if self._classes is None:
            self._classes = {
                attribute: (list(values), self.clip.embed_texts(list(values.values())))
                for attribute, values in ATTRIBUTE_PROMPTS.items()
            }
        return self._classes

    def read(self, images: Sequence[Any]) -> list[Seen]:
        """What each picture (path, bytes, PIL image or encoded image) shows, in order."""
        sources = [_pixels_and_key(image) for image in images]
        todo = [(i, source) for i, (source, key) in enumerate(sources) if key is None or key not in self._seen]
        found: dict[int, Seen] = {}
        if todo:
            vectors = self.clip.embed_images([open_image(source) for _, source in todo], progress=False)
            classes = self._prompts()
            for (i, _), vector in zip(todo, vectors, strict=True):
                values = {attr: names[int(np.argmax(texts @ vector))] for attr, (names, texts) in classes.items()}
                found[i] = Seen(values["color"], values["shape"], values["pattern"])
                key = sources[i][1]
                if key is not None:
                    self._seen[key] = found[i]
        return [found[i] if i in found else self._seen[key] for i, (_, key) in enumerate(sources)]  # type: ignore[index]

    def accuracy(self, products: Sequence[Product], images: Sequence[Any]) -> dict[str, Any]:
        """How often the reading matches the catalog's labels, per attribute, on these pictures.

        Returns ``model``, ``n`` and ``color`` / ``shape`` / ``pattern`` accuracies (0..1), and
        ``errors``: the products read wrong, with what was seen. Introduced in 10_what_the_pictures_add.
        """
        products = list(products)
        seen = self.read(images)
        if len(seen) != len(products):
            raise CourseError(f"Got {len(products)} products but {len(seen)} pictures; pass one picture per product.")
        truth = {"color": "color_name", "shape": "shape", "pattern": "pattern"}
        report: dict[str, Any] = {"model": self.model_id, "n": len(products)}
        for attribute, field in truth.items():
            right = [getattr(s, attribute) == getattr(p, field) for s, p in zip(seen, products, strict=True)]
            report[attribute] = sum(right) / len(right) if right else None
        report["errors"] = [
            {"product": p.name, "seen": s.describe()}
            for s, p in zip(seen, products, strict=True)
            if (s.color, s.shape, s.pattern) != (p.color_name, p.shape, p.pattern)
        ]
        return report


_DEFAULT: list[AttributeReader] = []


def default_reader() -> AttributeReader:
    """The reader the offline answerer uses unless given one: the bundled mini-CLIP, loaded once.

    Introduced in 10_what_the_pictures_add.
    """
    if not _DEFAULT:
        _DEFAULT.append(AttributeReader())
    return _DEFAULT[0]
