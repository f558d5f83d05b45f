"""What the search looks at in a shopper's picture: the product framed as the catalog frames it, and turned.

The catalog's pictures are flat drawings, centred, on white. A photo of the same product is
smaller or off-centre, on a table or a wall, and often tilted, and a CLIP trained on catalog-like
pictures (the bundled mini-CLIP) loses its way. Two standard query-side fixes, no retraining:

1. **Frame the foreground.** When the picture's border is a smooth background (white, a plain
   wall, a gradient), the background joined to the border is painted white and the picture is
   cropped to what is left and padded to a square: the product fills the frame as in the catalog.
2. **Test-time augmentation.** The framed picture is also embedded turned by
   :data:`VIEW_ROTATIONS` degrees; a catalog image's similarity to the query is its best
   similarity to any of these views, so a tilted photo matches the upright catalog image.

Search, its refusal threshold and ``eval --image-queries`` all embed pictures through
:func:`embed_picture_views`, so what is measured is what a shopper gets.
Introduced in 03_image_retrieval.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from .images import region_from_border, to_rgb

__all__ = ["VIEW_ROTATIONS", "embed_picture_views", "frame_foreground", "picture_views", "view_similarities"]

#: The turns (degrees) of the framed picture embedded besides the picture itself. The photo-like
#: tilts measured are 10-30 degrees; +-20 recovers them, and more turns let absent looks match too
#: (docs/benchmarks/image_queries_*.json).
VIEW_ROTATIONS = (-20, 20)
WHITE = (255, 255, 255)
#: How far (max over R, G, B) a pixel may be from the background the border predicts and still be background.
_TOLERANCE = 40
#: The share of the border that must look like background; below it (a tight crop through the product) the picture is kept.
_SMOOTH_BORDER = 0.8
#: Space kept around the product, as a share of its size: the catalog's drawings have about this much.
_MARGIN = 0.03


def _background(pixels: np.ndarray) -> np.ndarray:
    """The background each pixel would have if it were background: each row blends its left and right edges.

    A plain backdrop, a gradient from top to bottom or from side to side are all predicted.
    """
    left = np.median(pixels[:, :3], axis=1)
    right = np.median(pixels[:, -3:], axis=1)
    t = np.linspace(0.0, 1.0, pixels.shape[1])[None, :, None]
    return (1 - t) * left[:, None, :] + t * right[:, None, :]


def frame_foreground(picture: Image.Image) -> Image.Image:
    """The product on white, cropped to it and padded to a square, when the border is a smooth background.

    A picture whose border is not mostly background (a crop through the product, a busy scene)
    is returned as it is. A catalog image comes back almost unchanged: it is framed this way already.
    The first of :func:`picture_views`.
    """
    picture = to_rgb(picture)
    pixels = np.asarray(picture, dtype=np.float32)
    if min(pixels.shape[:2]) < 8:
        return picture
    like_background = np.abs(pixels - _background(pixels)).max(axis=-1) <= _TOLERANCE
    border = np.concatenate([like_background[0], like_background[-1], like_background[:, 0], like_background[:, -1]])
    if border.mean() < _SMOOTH_BORDER:
        return picture
    outside = region_from_border(like_background)
    rows, cols = np.nonzero(~outside)
    if not len(rows):  # nothing but background
        return picture
    product = np.where(outside[..., None], 255.0, pixels).astype(np.uint8)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    cut = Image.fromarray(product[top:bottom, left:right])
    side = round(max(cut.size) * (1 + 2 * _MARGIN))
    framed = Image.new("RGB", (side, side), WHITE)
    framed.paste(cut, ((side - cut.width) // 2, (side - cut.height) // 2))
    return framed


def picture_views(picture: Image.Image, views: bool = True) -> list[Image.Image]:
    """What the search embeds of a picture: with ``views``, the framed picture and its turns; else the picture.

    Introduced in 03_image_retrieval.
    """
    if not views:
        return [to_rgb(picture)]
    framed = frame_foreground(picture)
    turned = [framed.rotate(a, resample=Image.Resampling.BICUBIC, fillcolor=WHITE) for a in VIEW_ROTATIONS]
    return [framed, *turned]


def embed_picture_views(pictures: Sequence[Image.Image], embedder: Any, views: bool = True) -> np.ndarray:
    """Embed every view of every picture in one batched call: an (n pictures, n views, d) array.

    Row ``[i, 0]`` is the picture's main view (framed, upright), the one a picture + words query mixes.
    Introduced in 03_image_retrieval.
    """
    per_picture = [picture_views(p, views) for p in pictures]
    n_views = len(per_picture[0]) if per_picture else 1
    flat = [view for group in per_picture for view in group]
    vectors = embedder.embed_images(flat, progress=False) if flat else np.zeros((0, embedder.dim), np.float32)
    return vectors.reshape(len(per_picture), n_views, -1)


def view_similarities(view_vectors: np.ndarray, index: Any) -> np.ndarray:
    """One picture's similarity to every catalog image: the best over its views (``view_vectors``: views x d).

    Introduced in 03_image_retrieval.
    """
    return np.max([index.similarities(v) for v in view_vectors], axis=0)
