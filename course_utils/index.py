"""The image index: normalised embeddings, what they belong to, and the model that made them.

Search is one matrix product plus a top-k. Introduced in 03_image_retrieval.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .catalog import Product, product_from_dict, write_atomic
from .embeddings import l2_normalize
from .errors import CourseError

INDEX_FORMAT = 1


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores, best first.

    ``argpartition`` finds the k best in linear time; only those k are then sorted.
    Introduced in 03_image_retrieval.
    """
    if k <= 0:
        raise CourseError(f"k must be at least 1, got {k}.")
    n = scores.shape[0]
    if k >= n:
        return np.argsort(-scores, kind="stable")
    best = np.argpartition(-scores, k - 1)[:k]
    return best[np.argsort(-scores[best], kind="stable")]


@dataclass
class ImageIndex:
    """Image embeddings (rows, L2-normalised float32) with their products and image paths.

    ``dtype="float16"`` stores the embeddings in half the memory (and half the file size): the
    ranking barely moves and a CPU searches about as fast. ``skipped`` lists the files indexing
    could not use, with the reason.

    Introduced in 03_image_retrieval.
    """

    embeddings: np.ndarray
    products: list[Product]
    paths: list[str]
    model_id: str
    skipped: list[dict] = field(default_factory=list, repr=False)
    dtype: str = "float32"
    _faiss: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.dtype not in ("float32", "float16"):
            raise CourseError(f"dtype must be 'float32' or 'float16', got {self.dtype!r}.")
        self.embeddings = np.ascontiguousarray(self.embeddings, dtype=self.dtype)
        if self.embeddings.ndim != 2 or not (len(self.products) == len(self.paths) == len(self.embeddings)):
            raise ValueError("embeddings, products and paths must have one row/entry per image")

    def __len__(self) -> int:
        return len(self.products)

    def __repr__(self) -> str:
        skipped = f", {len(self.skipped)} files skipped" if self.skipped else ""
        return f"ImageIndex({len(self)} images, dim={self.dim}, model_id={self.model_id!r}{skipped})"

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    @classmethod
    def build(
        cls,
        products: Sequence[Product],
        paths: Sequence[str | os.PathLike],
        embedder,
        batch_size: int | None = None,
        cache: bool | str | os.PathLike | None = False,
        **options,
    ) -> ImageIndex:
        """Embed every image with ``embedder`` (a :class:`~course_utils.embeddings.CLIPEmbedder`).

        Files that are not usable images are left out and listed in ``skipped`` with the reason.
        ``cache=True`` reuses embeddings stored on disk for unchanged files; ``options`` go to
        :func:`course_utils.pipeline.embed_images`.
        """
        from .pipeline import build_index

        return build_index(list(products), list(paths), embedder, batch_size=batch_size, cache=cache, **options)[0]

    def check_model(self, model_id: str) -> None:
        """Refuse query vectors from another model: their numbers mean nothing in this space."""
        if model_id != self.model_id:
            raise CourseError(
                f"This index was built with model {self.model_id!r} but the query uses {model_id!r}. "
                "Rebuild the index with the query's model (or load that model)."
            )

    def similarities(self, query_vector: np.ndarray) -> np.ndarray:
        """Cosine similarity of one query to every image: one matrix-vector product."""
        query = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.dim:
            raise CourseError(f"Query vector has {query.shape[0]} numbers but the index stores {self.dim}.")
        if self.embeddings.dtype == np.float16:
            import torch  # NumPy has no fast float16 matrix product; PyTorch's CPU kernel does

            query16 = torch.from_numpy(l2_normalize(query).astype(np.float16))
            return (torch.from_numpy(self.embeddings) @ query16).float().numpy()
        return self.embeddings @ l2_normalize(query)

    def rows_where(
        self,
        categories: frozenset[str] | None = None,
        min_price: float | None = None,
        max_price: float | None = None,
    ) -> list[int]:
        """Rows whose metadata passes the filters (a database backend runs these as a query)."""
        return [
            i
            for i, p in enumerate(self.products)
            if (not categories or p.category in categories)
            and (min_price is None or (p.price is not None and p.price >= min_price))
            and (max_price is None or (p.price is not None and p.price <= max_price))
        ]

    def search(self, query_vector: np.ndarray, k: int = 3) -> list[tuple[int, float]]:
        """The ``k`` most similar images as ``(row, similarity)`` pairs, best first.

        ``k`` larger than the index returns every image; ``k <= 0`` is an error. After
        :meth:`use_faiss` the answer comes from FAISS instead of the exact scan.
        """
        if self._faiss is not None:
            if k <= 0:
                raise CourseError(f"k must be at least 1, got {k}.")
            query = np.asarray(query_vector, dtype=np.float32).reshape(-1)
            if query.shape[0] != self.dim:
                raise CourseError(f"Query vector has {query.shape[0]} numbers but the index stores {self.dim}.")
            return self._faiss.search(l2_normalize(query), min(k, len(self)))
        scores = self.similarities(query_vector)
        return [(int(i), float(scores[i])) for i in top_k(scores, k)]

    def use_faiss(self, method: str = "auto", **options) -> ImageIndex:
        """Answer :meth:`search` with FAISS (``pip install image-rag-course[faiss]``); returns the index.

        ``method``: ``flat`` (exact), ``ivf`` (approximate, for large indexes) or ``auto`` (IVF from
        :data:`course_utils.faiss_search.IVF_MIN_ROWS` rows). ``method=None`` goes back to the exact scan.
        """
        if method is None:
            self._faiss = None
            return self
        from .faiss_search import FaissSearch

        self._faiss = FaissSearch(self.embeddings, method=method, **options)
        return self

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike) -> Path:
        """Write one ``.npz`` holding the embeddings and a JSON manifest, atomically."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
        manifest = {
            "format": INDEX_FORMAT,
            "model_id": self.model_id,
            "products": [p.to_dict() for p in self.products],
            "paths": self.paths,
            "skipped": self.skipped,
        }
        buffer = io.BytesIO()
        np.savez(buffer, embeddings=self.embeddings, manifest=np.array(json.dumps(manifest)))
        write_atomic(path, buffer.getvalue())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ImageIndex:
        """Load an index written by :meth:`save`; a missing or damaged file is a clear error."""
        path = Path(path)
        if not path.exists() and path.with_suffix(".npz").exists():
            path = path.with_suffix(".npz")
        if not path.is_file():
            raise CourseError(f"Index file not found: {path}. Build one with `python -m course_utils index`.")
        try:
            with np.load(path, allow_pickle=False) as data:
                embeddings = data["embeddings"]
                manifest = json.loads(str(data["manifest"]))
            products = [_product_from_manifest(p, i) for i, p in enumerate(manifest["products"])]
            skipped = [dict(s) for s in manifest.get("skipped", [])]
            dtype = "float16" if embeddings.dtype == np.float16 else "float32"
            return cls(embeddings, products, list(manifest["paths"]), str(manifest["model_id"]), skipped, dtype)
        except CourseError as exc:
            raise CourseError(f"{path} is not a valid index: {exc}") from None
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            raise CourseError(
                f"{path} is not a valid index file ({type(exc).__name__}); rebuild it with "
                "`python -m course_utils index`."
            ) from None


def _product_from_manifest(data: object, position: int) -> Product:
    """A catalog product, or a photo known by its file name (no price: see ``Product.from_file_name``)."""
    if isinstance(data, dict) and data.get("price") is None and isinstance(data.get("name"), str):
        return Product.from_file_name(data["name"])
    return product_from_dict(data, position)
