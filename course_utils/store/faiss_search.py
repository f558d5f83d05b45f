"""An optional FAISS search backend for large indexes (``pip install image-rag-course[faiss]``).

Exact search (one matrix product over every row) is the course's default and is fast enough for
100,000 images on a laptop. Past that, an inverted-file index (IVF) clusters the rows and scans
only the clusters nearest the query: much less work, at the price of sometimes missing a true
neighbour. :func:`recall_at_k` measures how often, against exact search.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..catalog import Product
from ..errors import CourseError
from ..index import ImageIndex, MetadataFilter, check_k, check_query_vector

__all__ = ["IVF_MIN_ROWS", "FaissIndex", "FaissSearch", "exact_top_k", "recall_at_k"]

#: From this many rows ``method="auto"`` builds an IVF index; below it exact search is already quick.
IVF_MIN_ROWS = 50_000
METHODS = ("auto", "flat", "ivf")


def import_faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise CourseError(
            "FAISS is not installed: `pip install image-rag-course[faiss]` (or `pip install faiss-cpu`)."
        ) from None
    return faiss


class FaissSearch:
    """Inner-product search over L2-normalised rows with FAISS: ``flat`` (exact) or ``ivf`` (approximate).

    ``nlist`` (IVF clusters) defaults to about sqrt(rows); ``nprobe`` (clusters scanned per query)
    to nlist/16, which keeps recall@10 high on clustered data such as CLIP embeddings. Use
    :meth:`tune` to pick the smallest ``nprobe`` that reaches a recall target on your own queries.
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        method: str = "auto",
        nlist: int | None = None,
        nprobe: int | None = None,
        seed: int = 0,
    ):
        if method not in METHODS:
            raise CourseError(f"Unknown FAISS method {method!r}; use one of {', '.join(METHODS)}.")
        faiss = import_faiss()
        vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
        n, dim = vectors.shape
        if method == "auto":
            method = "ivf" if n >= IVF_MIN_ROWS else "flat"
        self.method = method
        self.rows = n
        if method == "flat":
            self.index = faiss.IndexFlatIP(dim)
            self.nlist = self.nprobe = 0
        else:
            self.nlist = int(nlist or min(max(16, round(math.sqrt(n))), max(1, n // 39)))
            quantizer = faiss.IndexFlatIP(dim)
            self.index = faiss.IndexIVFFlat(quantizer, dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
            self.index.cp.seed = seed
            self.index.cp.niter = 12
            # k-means on a sample: 64 points per cluster is plenty for the centroids
            sample = vectors
            if n > self.nlist * 64:
                rows = np.random.default_rng(seed).choice(n, self.nlist * 64, replace=False)
                sample = vectors[np.sort(rows)]
            self.index.train(sample)
            self.nprobe = int(nprobe or max(1, self.nlist // 16))
            self.index.nprobe = self.nprobe
        self.index.add(vectors)

    def __repr__(self) -> str:
        extra = f", nlist={self.nlist}, nprobe={self.nprobe}" if self.method == "ivf" else ""
        return f"FaissSearch({self.method}, {self.rows} rows{extra})"

    def set_nprobe(self, nprobe: int) -> None:
        if self.method == "ivf":
            self.nprobe = int(max(1, min(nprobe, self.nlist)))
            self.index.nprobe = self.nprobe

    def search_many(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) arrays of shape (m, k) for m normalised queries; a missing neighbour is row -1."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        return self.index.search(queries, k)

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The ``k`` best ``(row, similarity)`` pairs for one normalised query, as ``ImageIndex.search``."""
        scores, rows = self.search_many(query, k)
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]

    def tune(self, embeddings: np.ndarray, queries: np.ndarray, k: int = 10, target: float = 0.95) -> float:
        """Set the smallest power-of-two ``nprobe`` whose recall@k on ``queries`` reaches ``target``.

        Returns the recall reached (1.0 for a flat index, which is exact).
        """
        if self.method != "ivf":
            return 1.0
        truth = exact_top_k(embeddings, queries, k)
        nprobe, recall = 1, 0.0
        while True:
            self.set_nprobe(nprobe)
            recall = recall_at_k(self, embeddings, queries, k, truth=truth)
            if recall >= target or nprobe >= self.nlist:
                return recall
            nprobe *= 2


def exact_top_k(embeddings: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Rows of the k best matches of each query by exact search: (m, k), best first."""
    queries = np.atleast_2d(queries).astype(np.float32)
    embeddings = np.asarray(embeddings, dtype=np.float32)
    k = min(k, len(embeddings))
    parts = []
    for start in range(0, len(queries), 16):  # 16 queries at a time: bounded memory on millions of rows
        scores = queries[start : start + 16] @ embeddings.T
        best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1, kind="stable")
        parts.append(np.take_along_axis(best, order, axis=1))
    return np.concatenate(parts)


def recall_at_k(
    search: FaissSearch, embeddings: np.ndarray, queries: np.ndarray, k: int = 10, truth: np.ndarray | None = None
) -> float:
    """Share of the exact top-k that ``search`` also returns, averaged over ``queries`` (1.0 = no miss).

    ``truth`` (from :func:`exact_top_k`) saves recomputing the exact answer.
    """
    queries = np.atleast_2d(queries)
    truth = exact_top_k(embeddings, queries, k) if truth is None else truth
    _, found = search.search_many(queries, truth.shape[1])
    hits = [len(set(t.tolist()) & set(f.tolist())) for t, f in zip(truth, found, strict=True)]
    return float(np.sum(hits) / truth.size)


class FaissIndex:
    """An :class:`~course_utils.index.ImageIndex` whose :meth:`search` is answered by FAISS.

    Everything else (products, paths, exact similarities for the hybrid planner, metadata
    filters) is the wrapped index's, so it is a :class:`~course_utils.index.VectorIndex` like any
    other. ``method``: ``flat`` (exact), ``ivf`` (approximate, for large indexes) or ``auto`` (IVF
    from :data:`IVF_MIN_ROWS` rows).
    """

    def __init__(self, index: ImageIndex, method: str = "auto", **options: Any) -> None:
        self.index = index
        self.faiss = FaissSearch(index.embeddings, method=method, **options)

    def __repr__(self) -> str:
        return f"FaissIndex({self.index!r}, {self.faiss!r})"

    def __len__(self) -> int:
        return len(self.index)

    @property
    def products(self) -> list[Product]:
        return self.index.products

    @property
    def paths(self) -> list[str]:
        return self.index.paths

    @property
    def model_id(self) -> str:
        return self.index.model_id

    @property
    def dim(self) -> int:
        return self.index.dim

    def check_model(self, model_id: str) -> None:
        self.index.check_model(model_id)

    def similarities(self, query_vector: np.ndarray) -> np.ndarray:
        return self.index.similarities(query_vector)

    def rows_where(self, rules: MetadataFilter) -> list[int]:
        return self.index.rows_where(rules)

    def search(self, query_vector: np.ndarray, k: int = 3) -> list[tuple[int, float]]:
        """The ``k`` best ``(row, similarity)`` pairs, best first, found by FAISS."""
        k = check_k(k)
        return self.faiss.search(check_query_vector(query_vector, self.dim), min(k, len(self)))
