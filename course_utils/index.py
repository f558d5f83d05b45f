"""The image index: normalised embeddings, what they belong to, and the model that made them.

Search is one matrix product plus a top-k. :class:`VectorIndex` is the interface every backend
offers (this NumPy index, a Chroma collection, FAISS), and :class:`MetadataFilter` the metadata
rules a backend applies. Introduced in 03_image_retrieval.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .catalog import Product, product_from_dict
from .embeddings import l2_normalize
from .errors import CourseError
from .files import write_atomic

__all__ = [
    "ImageIndex",
    "MetadataFilter",
    "VectorIndex",
    "check_k",
    "check_model",
    "check_query_vector",
    "top_k",
]

INDEX_FORMAT = 1


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores, best first.

    ``argpartition`` finds the k best in linear time; only those k are then sorted.
    Introduced in 03_image_retrieval.
    """
    check_k(k)
    n = scores.shape[0]
    if k >= n:
        return np.argsort(-scores, kind="stable")
    best = np.argpartition(-scores, k - 1)[:k]
    return best[np.argsort(-scores[best], kind="stable")]


# --------------------------------------------------------------------------- checks every backend makes


def check_k(k: int) -> int:
    """``k`` itself, or a CourseError when it asks for no result at all."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise CourseError(f"k must be at least 1, got {k!r}.")
    return int(k)


def check_model(index_model_id: str | None, model_id: str) -> None:
    """Refuse query vectors from another model: their numbers mean nothing in this space."""
    if model_id != index_model_id:
        raise CourseError(
            f"This index was built with model {index_model_id!r} but the query uses {model_id!r}. "
            "Rebuild the index with the query's model (or load that model)."
        )


def check_query_vector(query_vector: np.ndarray, dim: int) -> np.ndarray:
    """One query vector of the index's size, L2-normalised (float32)."""
    query = np.asarray(query_vector, dtype=np.float32).reshape(-1)
    if query.shape[0] != dim:
        raise CourseError(f"Query vector has {query.shape[0]} numbers but the index stores {dim}.")
    return l2_normalize(query)


# --------------------------------------------------------------------------- the interface


@dataclass(frozen=True)
class MetadataFilter:
    """The metadata rules of a question: allowed categories and a price range (empty: everything).

    A database backend runs them as a query (Chroma's ``where=``); the NumPy index checks each row.
    Introduced in 09_scaling_with_a_vector_database.
    """

    categories: frozenset[str] = frozenset()
    min_price: float | None = None
    max_price: float | None = None

    @property
    def is_empty(self) -> bool:
        return not self.categories and self.min_price is None and self.max_price is None

    def allows(self, product: Product) -> bool:
        """Whether ``product`` passes every rule (an unknown price passes no price rule)."""
        if self.categories and product.category not in self.categories:
            return False
        if self.min_price is not None and (product.price is None or product.price < self.min_price):
            return False
        return self.max_price is None or (product.price is not None and product.price <= self.max_price)


@runtime_checkable
class VectorIndex(Protocol):
    """What retrieval needs of an image index, whatever stores it.

    Rows are numbered 0..n-1; ``products[i]`` and ``paths[i]`` describe row ``i``. Satisfied by
    :class:`ImageIndex`, :class:`~course_utils.store.ChromaIndex` and
    :class:`~course_utils.store.FaissIndex`. Introduced in 09_scaling_with_a_vector_database.
    """

    @property
    def products(self) -> list[Product]: ...

    @property
    def paths(self) -> list[str]: ...

    @property
    def model_id(self) -> str | None: ...

    @property
    def dim(self) -> int | None: ...

    def __len__(self) -> int: ...

    def check_model(self, model_id: str) -> None: ...

    def similarities(self, query_vector: np.ndarray) -> np.ndarray: ...

    def search(self, query_vector: np.ndarray, k: int = 3) -> list[tuple[int, float]]: ...

    def rows_where(self, rules: MetadataFilter) -> list[int]: ...


# --------------------------------------------------------------------------- the NumPy index


@dataclass
class ImageIndex:
    """Image embeddings (rows, L2-normalised float32) with their products and image paths.

    ``dtype="float16"`` stores the embeddings in half the memory (and half the file size): the
    ranking barely moves and a CPU searches about as fast. ``skipped`` lists the files indexing
    could not use, with the reason. Build one with :func:`course_utils.indexing.build_index`.

    Introduced in 03_image_retrieval.
    """

    embeddings: np.ndarray
    products: list[Product]
    paths: list[str]
    model_id: str
    skipped: list[dict] = field(default_factory=list, repr=False)
    dtype: str = "float32"

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

    def check_model(self, model_id: str) -> None:
        """Refuse query vectors from another model: their numbers mean nothing in this space."""
        check_model(self.model_id, model_id)

    def similarities(self, query_vector: np.ndarray) -> np.ndarray:
        """Cosine similarity of one query to every image: one matrix-vector product."""
        query = check_query_vector(query_vector, self.dim)
        if self.embeddings.dtype == np.float16:
            import torch  # NumPy has no fast float16 matrix product; PyTorch's CPU kernel does

            query16 = torch.from_numpy(query.astype(np.float16))
            return (torch.from_numpy(self.embeddings) @ query16).float().numpy()
        return self.embeddings @ query

    def rows_where(self, rules: MetadataFilter) -> list[int]:
        """Rows whose metadata passes ``rules`` (a database backend runs these as a query)."""
        return [i for i, p in enumerate(self.products) if rules.allows(p)]

    def search(self, query_vector: np.ndarray, k: int = 3) -> list[tuple[int, float]]:
        """The ``k`` most similar images as ``(row, similarity)`` pairs, best first.

        ``k`` larger than the index returns every image; ``k <= 0`` is an error.
        """
        scores = self.similarities(query_vector)
        return [(int(i), float(scores[i])) for i in top_k(scores, k)]

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike) -> Path:
        """Write one ``.npz`` holding the embeddings and a JSON manifest, atomically.

        An existing folder gets the file inside it, as ``index.npz``. Returns the path written.
        """
        path = Path(path)
        if path.is_dir():
            path = path / "index.npz"
        elif path.suffix != ".npz":
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
        if path.is_dir():
            path = path / "index.npz"  # where save() puts an index given a folder
        elif not path.exists() and path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")  # the name save() gave it: "index.v2" -> "index.v2.npz"
        if not path.is_file():
            raise CourseError(f"Index file not found: {path}. Build one with `python -m course_utils index`.")
        try:
            with np.load(path, allow_pickle=False) as data:
                embeddings = data["embeddings"]
                manifest = json.loads(str(data["manifest"]))
            products = [_product_from_manifest(p, i) for i, p in enumerate(manifest["products"])]
            skipped = [dict(s) for s in manifest.get("skipped", [])]
            dtype = "float16" if embeddings.dtype == np.float16 else "float32"
            index = cls(embeddings, products, list(manifest["paths"]), str(manifest["model_id"]), skipped, dtype)
            if not len(index):
                raise CourseError("it holds no images")
            if not np.isfinite(index.embeddings).all():
                raise CourseError("some of its vectors are not finite (NaN or infinity)")
            return index
        except CourseError as exc:
            raise CourseError(
                f"{path} is not a valid index: {exc}; rebuild it with `python -m course_utils index`."
            ) from None
        except RecursionError:
            raise CourseError(f"{path} is not a valid index file (its manifest is nested too deeply).") from None
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
