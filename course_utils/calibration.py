"""Refusal: when is the best hit good enough for the catalog to "have" what was asked?

CLIP similarities have no absolute scale (0.3 is a strong match for one model and a weak one for
another), so the threshold is calibrated per catalog and model, on queries generated from the
catalog's own labels: some it has, some it does not. A picture compared with pictures lives on
another scale again (much higher than a sentence compared with pictures), so queries by picture
get their own threshold, calibrated the same way on pictures: photo-like copies of the catalog's
images (present) and drawings of looks the catalog lacks (absent).
Introduced in 08_evaluating_image_rag (text) and 03_image_retrieval (pictures).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from .catalog import COLOR_HEX, PATTERNS, SHAPES, Product, draw_item, render_product
from .errors import CourseError
from .images import open_image
from .perturbations import PERTURBATIONS, perturb
from .query import generate_queries
from .query_views import embed_picture_views, view_similarities

__all__ = [
    "absent_pictures",
    "calibrate_image_refusal",
    "calibrate_refusal",
    "catalog_picture",
    "choose_threshold",
    "image_match_threshold",
    "image_refusal_calibration",
    "match_threshold",
    "present_pictures",
    "refusal_calibration",
]


def choose_threshold(present: Sequence[float], absent: Sequence[float]) -> dict[str, float]:
    """The best-hit similarity above which a query counts as "in the catalog".

    Picks the cut with the fewest false accepts + false rejects on labelled present/absent
    queries (the middle one when several tie).
    """
    present, absent = np.sort(np.asarray(present, float)), np.sort(np.asarray(absent, float))
    if not len(present) or not len(absent):
        raise ValueError("calibration needs both present and absent queries")
    values = np.unique(np.concatenate([present, absent]))
    cuts = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    errors = [np.mean(present < c) + np.mean(absent >= c) for c in cuts]
    best = np.flatnonzero(np.isclose(errors, min(errors)))
    threshold = float(cuts[best[len(best) // 2]])  # the middle one of the best cuts
    return {
        "threshold": threshold,
        "false_accept": float(np.mean(absent >= threshold)),
        "false_reject": float(np.mean(present < threshold)),
        "n_present": int(len(present)),
        "n_absent": int(len(absent)),
    }


def _calibratable(products: Sequence[Product]) -> bool:
    """Whether every product has known attributes (a photo folder has none to calibrate on)."""
    return bool(products) and all(p.shape in SHAPES and p.price is not None for p in products)


def calibrate_refusal(index: Any, embedder: Any) -> dict[str, float] | None:
    """Calibrate the "nothing matches" threshold for this catalog and model from generated queries.

    Category queries are left out: a picture does not show its category. Returns None for a
    catalog whose products have no known attributes (a plain photo folder).
    Introduced in 08_evaluating_image_rag.
    """
    if not _calibratable(index.products):
        return None
    queries = [q for q in generate_queries(index.products) if q["type"] != "category"]
    vectors = embedder.embed_texts([q["query"] for q in queries])
    best = [float(index.similarities(v).max()) for v in vectors]
    present = [b for b, q in zip(best, queries, strict=True) if q["relevant"]]
    absent = [b for b, q in zip(best, queries, strict=True) if not q["relevant"]]
    return choose_threshold(present, absent) if present and absent else None


# One calibration per (kind, index object, model): computing one embeds a hundred or more queries,
# and a notebook retrieves many times from the same index. Entries die with their index.
_CALIBRATIONS: dict[tuple[str, int, str, int], tuple[weakref.ref, dict[str, float] | None]] = {}


def _remembered(kind: str, index: Any, embedder: Any, compute) -> dict[str, float] | None:
    key = (kind, id(index), embedder.model_id, len(index))
    known = _CALIBRATIONS.get(key)
    if known is not None and known[0]() is index:
        return known[1]
    result = compute(index, embedder)
    _CALIBRATIONS[key] = (weakref.ref(index, lambda _ref, key=key: _CALIBRATIONS.pop(key, None)), result)
    return result


def refusal_calibration(index: Any, embedder: Any) -> dict[str, float] | None:
    """:func:`calibrate_refusal` for this index and model, computed once and then remembered."""
    return _remembered("text", index, embedder, calibrate_refusal)


def match_threshold(index: Any, embedder: Any) -> float | None:
    """The similarity a best hit needs for the catalog to "have" what was asked, or None.

    None for a catalog without labels to calibrate on (a photo folder). Introduced in 03_image_retrieval.
    """
    calibration = refusal_calibration(index, embedder)
    return calibration["threshold"] if calibration else None


# --------------------------------------------------------------------------- queries by picture


def catalog_picture(product: Product, path: Any) -> Image.Image:
    """The catalog's picture of ``product``: its indexed file, or a fresh render when the file is gone."""
    try:
        return open_image(path)
    except CourseError:
        return render_product(product)


def present_pictures(index: Any, seed: int = 0) -> list[Image.Image]:
    """Photo-like copies of every catalog image, one per perturbation: what a shopper would photograph.

    Introduced in 03_image_retrieval.
    """
    rng = np.random.default_rng([seed, 11])
    pictures = []
    for product, path in zip(index.products, index.paths, strict=True):
        picture = catalog_picture(product, path)
        pictures += [perturb(picture, name, rng) for name in PERTURBATIONS]
    return pictures


def absent_pictures(products: Sequence[Product], seed: int = 0) -> list[Image.Image]:
    """Pictures of products the catalog does not have: every colour + shape pair that no product has.

    Each is drawn like a catalog image (a random pattern, a name and a price in the catalog's
    style) and then changed by one perturbation, in turn, so that absent pictures differ from
    the catalog as much as the present ones do.
    """
    rng = np.random.default_rng([seed, 13])
    have = {(p.color_name, p.shape) for p in products}
    families = sorted({p.name.split()[0] for p in products if p.name.split()}) or ["Item"]
    names = list(PERTURBATIONS)
    pictures = []
    missing = [(color, shape) for color in COLOR_HEX for shape in SHAPES if (color, shape) not in have]
    for n, (color, shape) in enumerate(missing):
        label = f"{families[n % len(families)]} {chr(ord('A') + int(rng.integers(26)))}"
        pattern = PATTERNS[int(rng.integers(len(PATTERNS)))]
        picture = draw_item(shape, COLOR_HEX[color], pattern, label, f"${rng.uniform(1, 99):.2f}")
        pictures.append(perturb(picture, names[(n + seed) % len(names)], rng))
    return pictures


def calibrate_image_refusal(index: Any, embedder: Any, seed: int = 0, views: bool = True) -> dict[str, float] | None:
    """Calibrate the "nothing looks like this" threshold for pictures, for this catalog and model.

    Present: :func:`present_pictures`; absent: :func:`absent_pictures`. Their best-hit
    similarities separate like those of text queries do, only on the image-to-image scale. Each
    picture is embedded as a query is (:func:`course_utils.query_views.embed_picture_views`, with
    or without ``views``), so the threshold fits the scores a search compares with it.
    Returns None for a catalog without known attributes (a photo folder), or when every colour
    and shape pair is in the catalog.
    """
    if not _calibratable(index.products):
        return None
    absent = absent_pictures(index.products, seed)
    if not absent:
        return None

    def best(pictures: list[Image.Image]) -> list[float]:
        return [float(view_similarities(v, index).max()) for v in embed_picture_views(pictures, embedder, views)]

    return choose_threshold(best(present_pictures(index, seed)), best(absent))


def image_refusal_calibration(index: Any, embedder: Any, views: bool = True) -> dict[str, float] | None:
    """:func:`calibrate_image_refusal` for this index and model, computed once and then remembered."""
    if views:
        return _remembered("image", index, embedder, calibrate_image_refusal)
    return _remembered("image as given", index, embedder, lambda i, e: calibrate_image_refusal(i, e, views=False))


def image_match_threshold(index: Any, embedder: Any) -> float | None:
    """The similarity a picture's best hit needs for the catalog to "have" it, or None (a photo folder).

    Introduced in 03_image_retrieval.
    """
    calibration = image_refusal_calibration(index, embedder)
    return calibration["threshold"] if calibration else None
