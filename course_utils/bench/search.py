"""How fast is search at scale? Exact float32 and float16 scans and FAISS, on embedding-like vectors."""

from __future__ import annotations

import importlib.util
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..catalog import Product
from ..errors import CourseError
from ..index import ImageIndex
from ..store.faiss_search import FaissSearch, recall_at_k

__all__ = [
    "SEARCH_BYTES_PER_NUMBER",
    "EmbeddingLikeVectors",
    "check_search_memory",
    "clustered_unit_vectors",
    "median_ms",
    "search_benchmark",
]


def clustered_unit_vectors(n: int, dim: int, rng: np.random.Generator, centers: np.ndarray) -> np.ndarray:
    """Unit vectors scattered around ``centers`` (cosine about 0.7 to their centre), like embeddings of
    many photos of fewer kinds of things. Well-separated clusters make approximate search easy; the
    FAISS timings here use the harder :class:`EmbeddingLikeVectors`.
    """
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 65_536):
        stop = min(n, start + 65_536)
        block = rng.standard_normal((stop - start, dim), dtype=np.float32) / np.float32(math.sqrt(dim))
        block += centers[rng.integers(0, len(centers), stop - start)]
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


class EmbeddingLikeVectors:
    """Random unit vectors shaped like real embeddings: most of their length in a few dozen directions.

    Real CLIP embeddings have a low intrinsic dimension; points here lie near a 32-dimensional
    subspace with a decaying spectrum, plus a little noise in every direction. No clusters are built
    in, so an IVF index gets no help it would not get from real data. Exact search costs the same on
    any values; FAISS recall depends on this structure.
    """

    def __init__(self, dim: int, rng: np.random.Generator, intrinsic: int = 32, noise: float = 0.02):
        self.rng = rng
        rank = min(intrinsic, dim)
        self.basis = np.linalg.qr(rng.standard_normal((dim, rank)))[0].T.astype(np.float32)
        self.scales = (1.0 / np.sqrt(np.arange(1, rank + 1))).astype(np.float32)
        self.noise = np.float32(noise)

    def sample(self, n: int) -> np.ndarray:
        dim = self.basis.shape[1]
        out = np.empty((n, dim), dtype=np.float32)
        for start in range(0, n, 65_536):  # in blocks: bounded temporary memory for millions of rows
            stop = min(n, start + 65_536)
            z = self.rng.standard_normal((stop - start, len(self.scales)), dtype=np.float32) * self.scales
            block = z @ self.basis + self.rng.standard_normal((stop - start, dim), dtype=np.float32) * self.noise
            out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
        return out


#: Bytes per vector component the search timings hold at the largest size: the float32 rows,
#: their float16 copy and FAISS's own copy, roughly.
SEARCH_BYTES_PER_NUMBER = 10


def check_search_memory(rows: int, dim: int) -> None:
    """Refuse an index size whose vectors cannot fit in this machine's memory, before any work starts."""
    need = rows * (dim * SEARCH_BYTES_PER_NUMBER + 16)  # + a product and a path reference per row
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): let the allocation decide
        return
    if need > total:
        raise CourseError(
            f"--sizes {rows:,}: timing search at that size needs about {need / 2**30:,.0f} GB of memory "
            f"and this machine has {total / 2**30:,.0f} GB; use smaller sizes."
        )


def median_ms(fn: Callable[[np.ndarray], Any], queries: np.ndarray) -> float:
    """Median milliseconds of ``fn(query)`` over ``queries``, after one warm-up call."""
    fn(queries[0])
    times = []
    for q in queries:
        start = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def search_benchmark(
    dim: int,
    sizes: Sequence[int],
    faiss_method: str = "auto",
    n_queries: int = 30,
    seed: int = 0,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Median per-query search time at each index size: exact float32, exact float16 and FAISS (+ recall@10).

    The vectors are :class:`EmbeddingLikeVectors`; smaller sizes are prefixes of the largest set.
    """
    largest = max(sizes)
    vectors = EmbeddingLikeVectors(dim, np.random.default_rng(seed))
    log(f"generating {largest:,} vectors of dimension {dim}")
    data = vectors.sample(largest)
    queries, tuning, held_out = vectors.sample(n_queries), vectors.sample(100), vectors.sample(200)
    placeholder = Product.from_file_name("synthetic")
    out: dict[str, Any] = {"search_ms": {}, "float16_search_ms": {}}
    faiss_ok = importlib.util.find_spec("faiss") is not None
    if faiss_ok:
        out.update({"faiss_query_ms": {}, "faiss_recall_at_10": {}, "faiss_method": {}, "faiss_build_s": {}})
    for n in sorted(sizes):
        rows = data[:n]
        index = ImageIndex(rows, [placeholder] * n, [""] * n, "synthetic")
        out["search_ms"][str(n)] = median_ms(lambda q, ix=index: ix.search(q, 10), queries)
        half = ImageIndex(rows, [placeholder] * n, [""] * n, "synthetic", dtype="float16")
        out["float16_search_ms"][str(n)] = median_ms(lambda q, ix=half: ix.search(q, 10), queries)
        del half
        if faiss_ok:
            start = time.perf_counter()
            search = FaissSearch(rows, method=faiss_method, seed=seed)
            # nprobe picked on tuning queries (with a margin), recall then measured on held-out ones
            search.tune(rows, tuning, k=10, target=0.97)
            out["faiss_build_s"][str(n)] = time.perf_counter() - start
            out["faiss_method"][str(n)] = repr(search)
            out["faiss_query_ms"][str(n)] = median_ms(lambda q, s=search: s.search(q, 10), queries)
            out["faiss_recall_at_10"][str(n)] = recall_at_k(search, rows, held_out, k=10)
            del search
        log(f"search at {n:,} rows: exact {out['search_ms'][str(n)]:.2f} ms")
    return out
