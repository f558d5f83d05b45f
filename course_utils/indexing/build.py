"""From image files to an index: embed them (here, or with Ray Data across machines), keep the usable ones.

Introduced in 06_exercises (index your own photos) and 09_scaling_with_a_vector_database (when one
machine is not enough).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..catalog import Product
from ..errors import CourseError
from ..index import ImageIndex
from .embed import EmbedResult, embed_files
from .folders import folder_inputs
from .ray_engine import embed_files_ray

__all__ = ["ENGINES", "build_index", "index_files", "index_folder"]

#: Where the embedding runs: in this process, or on a Ray Data actor pool (the ``ray`` extra).
ENGINES = ("local", "ray")


def index_files(
    products: Sequence[Product],
    paths: Sequence[str | os.PathLike],
    embedder: Any,
    *,
    skipped: Sequence[dict] = (),
    engine: str = "local",
    **options: Any,
) -> tuple[ImageIndex, EmbedResult]:
    """Embed ``paths`` with :func:`embed_files` and index the usable ones; also return the run's record.

    ``skipped`` lists files left out before embedding (from a folder scan). ``engine="ray"``
    embeds with Ray Data instead (:func:`~.ray_engine.embed_files_ray`). ``options`` go to the
    embedding function. Raises :class:`CourseError` when no image is usable.
    Introduced in 09_scaling_with_a_vector_database (when one machine is not enough).
    """
    if len(products) != len(paths):
        raise ValueError("one product per image path")
    if engine not in ENGINES:
        raise CourseError(f"Unknown engine {engine!r}; use one of {', '.join(ENGINES)}.")
    if engine == "ray":
        result = embed_files_ray(embedder, paths, **options)
    else:
        result = embed_files(embedder, paths, **options)
    all_skipped = [*skipped, *result.skipped]
    if not result.kept:
        first = f" First: {all_skipped[0]['path']}: {all_skipped[0]['reason']}." if all_skipped else ""
        raise CourseError(f"None of the {len(paths)} image(s) could be used, so there is nothing to index.{first}")
    index = ImageIndex(
        result.vectors,
        [products[i] for i in result.kept],
        [str(paths[i]) for i in result.kept],
        embedder.model_id,
        skipped=all_skipped,
    )
    return index, result


def build_index(
    products: Sequence[Product], paths: Sequence[str | os.PathLike], embedder: Any, **options: Any
) -> ImageIndex:
    """An :class:`~course_utils.index.ImageIndex` of these products' images, embedded by ``embedder``.

    Files that are not usable images are left out and listed in ``index.skipped`` with the reason.
    ``cache=True`` reuses embeddings stored on disk for unchanged files; other ``options`` go to
    :func:`embed_files`.
    """
    return index_files(products, paths, embedder, **options)[0]


def index_folder(
    folder: str | os.PathLike,
    embedder: Any,
    catalog: str | os.PathLike | None = None,
    **options: Any,
) -> ImageIndex:
    """Index every image in a folder (a photo folder, or a rendered catalog with its ``catalog.json``).

    Bad files are skipped and listed in ``index.skipped``; embeddings are cached on disk unless
    ``cache=False``. Introduced in 06_exercises (exercise: index your own photos).
    """
    products, paths, skipped = folder_inputs(folder, catalog)
    options.setdefault("cache", True)
    return index_files(products, paths, embedder, skipped=skipped, **options)[0]
