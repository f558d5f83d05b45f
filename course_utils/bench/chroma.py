"""How fast and how exact is Chroma? Insert time, query latency and recall against exact search.

``python -m course_utils bench --chroma 10000,100000`` runs it beside the indexing benchmark;
notebook 09 runs it at small sizes. Needs the ``chroma`` extra. Introduced in
09_scaling_with_a_vector_database.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..embeddings import l2_normalize
from ..errors import CourseError
from ..index import top_k
from ..store import ChromaServer, chroma_client
from ..store.chroma import batch_slices, chroma_settings, import_chromadb
from .search import clustered_unit_vectors

__all__ = ["BENCH_BACKENDS", "BENCH_VECTORS", "bench_chroma", "bench_vectors", "format_bench"]

BENCH_BACKENDS = ("embedded", "http")
BENCH_VECTORS = ("random", "clustered")


def bench_vectors(kind: str, n: int, queries: int, dim: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` index vectors and ``queries`` query vectors, unit length: ``random`` or ``clustered``.

    ``random``: uniform on the sphere, the hardest case for a graph index (every point is about
    equally far from every other). ``clustered``: scattered around ``n // 100`` centres (at most
    1,000), as embeddings of many photos of fewer kinds of things are; the same generator as the
    FAISS timings of :mod:`course_utils.bench.search`.
    """
    if kind == "random":
        return l2_normalize(rng.standard_normal((n, dim))), l2_normalize(rng.standard_normal((queries, dim)))
    if kind == "clustered":
        centers = l2_normalize(rng.standard_normal((max(1, min(1000, n // 100)), dim)))
        return clustered_unit_vectors(n, dim, rng, centers), clustered_unit_vectors(queries, dim, rng, centers)
    raise CourseError(f"Unknown benchmark vectors {kind!r}; use {' or '.join(BENCH_VECTORS)}.")


def _percentile_ms(seconds: Sequence[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(seconds) * 1000.0, q)), 3)


def _bench_collection(client: Any, name: str, ef_search: int | None) -> Any:
    from chromadb.errors import NotFoundError

    try:
        client.delete_collection(name)
    except NotFoundError:
        pass
    hnsw: dict[str, Any] = {"space": "cosine"}
    if ef_search:
        hnsw["ef_search"] = int(ef_search)
    return client.create_collection(name, configuration={"hnsw": hnsw}, embedding_function=None)


def bench_chroma(
    sizes: Sequence[int] = (10_000, 100_000),
    dim: int = 512,
    *,
    backends: Sequence[str] = BENCH_BACKENDS,
    k: int = 10,
    queries: int = 50,
    seed: int = 0,
    server_url: str | None = None,
    workdir: str | os.PathLike | None = None,
    batch_size: int | None = None,
    ef_search: int | None = None,
    vectors: str = "random",
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Insert time, query latency and recall@k of Chroma against exact NumPy search.

    For each size, ``size`` L2-normalised vectors of ``dim`` numbers (see :func:`bench_vectors`)
    are upserted (in batches of the client's maximum) into a fresh cosine collection, embedded
    (a ``PersistentClient`` on disk) and/or over HTTP (``server_url``, or a ``chroma run`` started
    here for the run). Then ``queries`` queries are asked one at a time, as users would, and each
    answer is compared with the exact top-``k`` of one NumPy matrix product. ``random`` vectors
    have no clusters, the hardest case for approximate (HNSW) search; ``clustered`` ones are
    closer to real embeddings. ``ef_search`` (Chroma's default: 100) trades speed for recall.
    Collections are deleted afterwards.
    Returns ``{"dim", "k", "queries", "rows": [{"size", "backend", "insert_s", "p50_ms", ...}]}``.
    Introduced in 09_scaling_with_a_vector_database.
    """
    unknown = sorted(set(backends) - set(BENCH_BACKENDS))
    if unknown:
        raise CourseError(f"Unknown benchmark backend(s) {', '.join(unknown)}; use {', '.join(BENCH_BACKENDS)}.")
    if vectors not in BENCH_VECTORS:
        raise CourseError(f"Unknown benchmark vectors {vectors!r}; use {' or '.join(BENCH_VECTORS)}.")
    if k <= 0 or queries <= 0 or dim <= 0 or any(n < k for n in sizes):
        raise CourseError("Benchmark sizes must be at least k, and k, queries and dim positive.")
    chromadb = import_chromadb()
    say = progress or (lambda _message: None)
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="chroma-bench-", dir=workdir) as tmp:
        server = None
        clients: dict[str, Any] = {}
        try:
            if "embedded" in backends:
                clients["embedded"] = chromadb.PersistentClient(
                    path=str(Path(tmp) / "embedded"), settings=chroma_settings()
                )
            if "http" in backends:
                if server_url is None:
                    say("starting a local Chroma server ...")
                    server = ChromaServer(Path(tmp) / "server").start()
                clients["http"] = chroma_client(server_url or server.url)
            for size in sizes:
                data, asked = bench_vectors(vectors, size, queries, dim, rng)
                exact, seconds = [], []
                for query in asked:
                    start = time.perf_counter()
                    exact.append(top_k(data @ query, k))
                    seconds.append(time.perf_counter() - start)
                rows.append(
                    {"size": size, "backend": "numpy", "insert_s": 0.0, "inserts_per_s": None, "recall_at_k": 1.0}
                    | {"p50_ms": _percentile_ms(seconds, 50), "p95_ms": _percentile_ms(seconds, 95)}
                )
                for backend, client in clients.items():
                    say(f"{size:,} vectors, chroma {backend}: inserting ...")
                    name = f"bench-{size}-{dim}"
                    collection = _bench_collection(client, name, ef_search)
                    ids = [str(i) for i in range(size)]
                    step = batch_size or int(client.get_max_batch_size())
                    start = time.perf_counter()
                    for part in batch_slices(size, step):
                        collection.upsert(ids=ids[part], embeddings=data[part])
                    insert_s = time.perf_counter() - start
                    collection.query(query_embeddings=[asked[0]], n_results=k, include=[])  # warm-up: load the index
                    recalls, seconds = [], []
                    for query, truth in zip(asked, exact, strict=True):
                        start = time.perf_counter()
                        found = collection.query(query_embeddings=[query], n_results=k, include=[])
                        seconds.append(time.perf_counter() - start)
                        recalls.append(len({int(i) for i in found["ids"][0]} & {int(i) for i in truth}) / k)
                    client.delete_collection(name)
                    rows.append(
                        {
                            "size": size,
                            "backend": f"chroma-{backend}",
                            "insert_s": round(insert_s, 2),
                            "inserts_per_s": round(size / insert_s),
                            "recall_at_k": round(float(np.mean(recalls)), 4),
                            "p50_ms": _percentile_ms(seconds, 50),
                            "p95_ms": _percentile_ms(seconds, 95),
                        }
                    )
                    say(f"{size:,} vectors, chroma {backend}: {rows[-1]}")
        finally:
            if server is not None:
                server.stop()
    return {
        "dim": dim,
        "k": k,
        "queries": queries,
        "vectors": vectors,
        "seed": seed,
        "ef_search": ef_search,
        "rows": rows,
    }


def format_bench(result: Mapping[str, Any]) -> str:
    """The benchmark as a plain-text table, one line per size and backend.

    Introduced in 09_scaling_with_a_vector_database.
    """
    k = result["k"]
    lines = [
        f"{result.get('vectors', 'random')} unit vectors of {result['dim']} numbers, {result['queries']} queries "
        f"one at a time, ef_search {result.get('ef_search') or '100 (default)'}",
        f"{'vectors':>9}  {'backend':<16} {'insert s':>9} {'p50 ms':>8} {'p95 ms':>8} {f'recall@{k}':>10}",
    ]
    for row in result["rows"]:
        lines.append(
            f"{row['size']:>9,}  {row['backend']:<16} {row['insert_s']:>9.2f} {row['p50_ms']:>8.2f} "
            f"{row['p95_ms']:>8.2f} {row['recall_at_k']:>10.3f}"
        )
    return "\n".join(lines)
