"""The learner's workspace: rendered catalogs and their indexes in the cache, and the setup report.

So ``python -m course_utils ask ...`` works on a fresh machine with no set-up, and the second
call reuses what the first one built. The setup cell of every notebook prints
:func:`report_environment`. Introduced in 01_synthetic_catalog and 03_image_retrieval.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import config
from .catalog import Product, default_catalog, render_catalog
from .embeddings import BUNDLED_MODEL_DIR, DEFAULT_MODEL, pick_device
from .errors import CourseError
from .files import keyed_name
from .index import ImageIndex
from .indexing import build_index
from .llm import get_cascade

__all__ = ["catalog_images", "catalog_index", "catalog_key", "environment_report", "report_environment"]


def catalog_key(products: Sequence[Product]) -> str:
    """A short hash of a catalog's content: its cache folder's name."""
    text = json.dumps([p.to_dict() for p in products], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def catalog_images(products: Sequence[Product] | None = None, out_dir: str | os.PathLike | None = None) -> list[Path]:
    """Rendered images of a catalog (the default one if None), rendered once and then reused.

    Introduced in 02_clip_embeddings.
    """
    products = list(products) if products is not None else default_catalog()
    out = Path(out_dir) if out_dir else config.cache_dir() / f"catalog-{catalog_key(products)}"
    paths = [out / f"{p.slug}.png" for p in products]
    if not all(path.is_file() for path in paths) or not (out / "catalog.json").is_file():
        try:
            paths = render_catalog(products, out)
        except OSError as exc:
            raise CourseError(f"Cannot write catalog images to {out}: {exc.strerror}. Set COURSE_CACHE_DIR.") from None
    return paths


def catalog_index(embedder: Any, products: Sequence[Product] | None = None, rebuild: bool = False) -> ImageIndex:
    """The index of a catalog for ``embedder``'s model, built once and then loaded from the cache.

    Introduced in 03_image_retrieval.
    """
    products = list(products) if products is not None else default_catalog()
    paths = catalog_images(products)
    # one file per model, named by a hash of the whole model id (slugs of two ids can be alike)
    target = paths[0].parent / f"index-{keyed_name(embedder.model_id, embedder.model_id)}.npz"
    if target.is_file() and not rebuild:
        try:
            index = ImageIndex.load(target)
        except CourseError:
            index = None  # a damaged cache file is rebuilt, not reported
        if index is not None and index.model_id == embedder.model_id and index.products == products:
            return index
    index = build_index(products, paths, embedder)
    try:
        index.save(target)
    except OSError:
        pass  # a read-only cache only costs the rebuild next time
    return index


# --------------------------------------------------------------------------- what the setup cell prints


def _version(module: str) -> str:
    try:
        imported = __import__(module)
    except ImportError:
        return "not installed"
    return str(getattr(imported, "__version__", "unknown"))


def clip_model_description() -> str:
    """Which CLIP model ``load_clip()`` will use, in words."""
    name = config.clip_model()
    if Path(name).expanduser().is_dir():
        return f"{name} (local folder)"
    if config.offline():
        return "bundled mini-CLIP (offline)"
    if name == DEFAULT_MODEL:
        fallback = " (falls back to the bundled mini-CLIP if the hub cannot be reached)"
        return name + (fallback if (BUNDLED_MODEL_DIR / "config.json").exists() else "")
    return name


def llm_description() -> str:
    """The LLM providers the cascade will try, by name only: never a key."""
    infos = get_cascade(verbose=False).list_providers()
    configured = [info.display_name for info in infos if info.state == "configured"]
    if not configured:
        return "none configured"
    if configured == ["offline"]:
        return "offline answerer only (rule-based, not an LLM; add a key for real answers)"
    return ", ".join(configured)


def environment_report() -> str:
    """The setup summary as text (see :func:`report_environment`)."""
    import torch
    import transformers

    where = "Google Colab" if "google.colab" in sys.modules else "local"
    lines = [
        f"course_utils  {config.VERSION}",
        f"Python        {platform.python_version()} ({where})",
        f"torch         {torch.__version__}",
        f"transformers  {transformers.__version__}",
        f"device        {pick_device()}",
        f"CLIP model    {clip_model_description()}",
        f"LLM           {llm_description()}",
    ]
    return "\n".join(lines)


def report_environment() -> None:
    """Print the versions (course_utils, Python, torch, transformers), the device, the CLIP model and the LLMs.

    The setup cell of every notebook calls it. Introduced in 01_synthetic_catalog.
    """
    print(environment_report())
