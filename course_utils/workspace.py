"""Where the course keeps its files: a cache folder with rendered catalogs and their indexes.

So ``python -m course_utils ask ...`` works on a fresh machine with no set-up, and the second
call reuses what the first one built. Introduced in 03_image_retrieval.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from .catalog import Product, default_catalog, render_catalog, slugify
from .errors import CourseError
from .index import ImageIndex


def cache_dir() -> Path:
    """``COURSE_CACHE_DIR``, else ``~/.cache/image-rag-course``."""
    return Path(os.environ.get("COURSE_CACHE_DIR") or Path.home() / ".cache" / "image-rag-course").expanduser()


def catalog_key(products: Sequence[Product]) -> str:
    text = json.dumps([p.to_dict() for p in products], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def catalog_images(products: Sequence[Product] | None = None, out_dir: str | os.PathLike | None = None) -> list[Path]:
    """Rendered images of a catalog (the default one if None), rendered once and then reused.

    Introduced in 02_clip_embeddings.
    """
    products = list(products) if products is not None else default_catalog()
    out = Path(out_dir) if out_dir else cache_dir() / f"catalog-{catalog_key(products)}"
    paths = [out / f"{p.slug}.png" for p in products]
    if not all(path.is_file() for path in paths) or not (out / "catalog.json").is_file():
        try:
            paths = render_catalog(products, out)
        except OSError as exc:
            raise CourseError(f"Cannot write catalog images to {out}: {exc.strerror}. Set COURSE_CACHE_DIR.") from None
    return paths


def catalog_index(embedder, products: Sequence[Product] | None = None, rebuild: bool = False) -> ImageIndex:
    """The index of a catalog for ``embedder``'s model, built once and then loaded from the cache.

    Introduced in 03_image_retrieval.
    """
    products = list(products) if products is not None else default_catalog()
    paths = catalog_images(products)
    target = paths[0].parent / f"index-{slugify(embedder.model_id)}.npz"
    if target.is_file() and not rebuild:
        try:
            index = ImageIndex.load(target)
        except CourseError:
            index = None  # a damaged cache file is rebuilt, not reported
        if index is not None and index.model_id == embedder.model_id and index.products == products:
            return index
    index = ImageIndex.build(products, paths, embedder)
    try:
        index.save(target)
    except OSError:
        pass  # a read-only cache only costs the rebuild next time
    return index
