"""Embedding image files with Ray Data: the same work as :func:`~.embed.embed_files`, spread over a cluster.

One machine decodes and embeds a few hundred images a second at best. A shop with a million
product photos uses a cluster, and an existing engine to run it: here `Ray Data
<https://docs.ray.io/en/latest/data/data.html>`_. The driver (your Python) lists the files and
owns the embedding cache; a pool of actors, each holding one copy of the model (one per GPU, or
``actors`` of them on CPUs), reads, hashes, decodes and embeds batches of files with the very
code the one-machine pipeline uses (:class:`~.workers.DecodeJob`, the batch runner of
:mod:`.embed`). Files travel as a listing, not as bytes, so an unreadable file is skipped with the
same reason as on one machine instead of failing the whole dataset.

``ray.init()`` starts Ray on this machine; ``ray.init(address="ray://head:10001")`` (or
``address=`` here) joins a cluster, whose workers must see the same file paths (a shared disk or
bucket mount). Needs the ``ray`` extra: ``pip install "image-rag-course[ray]"``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Iterable
from typing import Any

import numpy as np

from ..errors import CourseError
from ..images import UnusableImage
from .embed import EmbedResult, EmbedSettings, _BatchRunner, resolve_settings
from .workers import DecodeJob, _CachedDigests

__all__ = ["RayEmbedder", "embed_files_ray", "ray_available"]


def ray_available() -> bool:
    """Whether Ray Data can be imported (the ``ray`` extra is installed)."""
    try:
        import ray.data  # noqa: F401
    except ImportError:
        return False
    return True


class _NoBar:
    """The batch runner reports progress to a bar; inside an actor there is none to show."""

    def update(self, n: int) -> None:
        pass


class RayEmbedder:
    """A Ray Data actor: one copy of the model, turning a batch of file paths into vectors (or skip reasons).

    Each row comes back with ``what``: ``vector`` (embedded here), ``hit`` (the driver's cache has
    it), ``known`` (left out on request) or ``skip`` (with the reason).
    """

    def __init__(self, embedder: Any, settings: EmbedSettings, job: DecodeJob, torch_threads: int | None):
        import ray
        import torch

        if torch_threads:
            torch.set_num_threads(torch_threads)
        self.embedder = ray.get(embedder) if isinstance(embedder, ray.ObjectRef) else embedder
        self.settings, self.job = settings, job

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n, dim = len(batch["row"]), self.embedder.dim
        what, reasons, digests = ["skip"] * n, [""] * n, [""] * n
        pixels = []
        for j, path in enumerate(batch["path"]):
            kind, payload, digest = self.job.run(str(path))
            what[j], digests[j] = kind, digest or ""
            if kind == "skip":
                reasons[j] = payload
            elif kind == "pixels":
                pixels.append((j, payload, digest))
        vectors = np.zeros((n, dim), dtype=np.float32)
        done = np.zeros(n, dtype=bool)
        if pixels:
            runner = _BatchRunner(self.embedder, self.settings, vectors, done, _NoBar())
            runner.forward(pixels)
            runner.finish()
        for j in np.flatnonzero(done):
            what[j] = "vector"
        return {
            "row": batch["row"],
            "what": np.array(what),
            "reason": np.array(reasons, dtype=object),
            "digest": np.array(digests),
            "vector": vectors,
        }


def embed_files_ray(
    embedder: Any,
    paths: Iterable[str | os.PathLike],
    *,
    actors: int | None = None,
    batch_size: int | None = None,
    cache: bool | str | os.PathLike | None = None,
    on_error: str = "skip",
    precision: str = "auto",
    preprocess: str = "fast",
    draft: bool = True,
    known: Collection[str] = (),
    address: str | None = None,
    num_cpus: int | None = None,
) -> EmbedResult:
    """Embed image files with a Ray Data actor pool; the result is what :func:`~.embed.embed_files` returns.

    Parameters
    ----------
    embedder : CLIPEmbedder
        Sent once to the cluster's object store; each actor holds one copy.
    paths : image files (every worker of the cluster must be able to read them).
    actors : model copies: default one per GPU of the cluster next to a CUDA model, else one per CPU.
    batch_size, cache, on_error, precision, preprocess, draft, known : as for :func:`~.embed.embed_files`.
        The cache is the driver's: workers are told which files it holds, and new vectors are
        stored by the driver, so a cluster needs no shared cache folder.
    address, num_cpus : for ``ray.init`` when Ray is not started yet (``address`` joins a cluster;
        ``num_cpus`` caps a Ray started on this machine).
    """
    if not ray_available():
        raise CourseError('--engine ray needs Ray Data: pip install "ray[data]" (or the course\'s [ray] extra).')
    import ray

    if on_error not in ("skip", "raise"):
        raise CourseError(f"on_error must be 'skip' or 'raise', got {on_error!r}.")
    items = [str(p) for p in paths]
    settings = resolve_settings(
        embedder,
        items,
        batch_size=batch_size,
        cache=cache,
        precision=precision,
        preprocess=preprocess,
        draft=draft,
        parallel="threads",
    )
    store = settings.cache
    if not ray.is_initialized():
        ray.init(address=address, num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    gpu = settings.device.startswith("cuda")
    cluster = ray.cluster_resources()
    if actors is None:
        actors = int(cluster.get("GPU", 1)) if gpu else max(1, int(cluster.get("CPU", 1)))
    if actors < 1:
        raise CourseError(f"actors must be at least 1, got {actors}.")
    # an actor's share of the CPUs is also how many threads its model may use
    cpus = 1 if gpu else max(1, int(cluster.get("CPU", 1)) // actors)
    # what the actors know of the cache is which files it holds; the vectors stay with the driver
    holds = _CachedDigests(store.digests()) if store is not None else None
    job = DecodeJob(settings.recipe, settings.processor, holds, draft, frozenset(known))
    worker_settings = EmbedSettings(**{**settings.__dict__, "cache": None})

    start = time.perf_counter()
    n = len(items)
    vectors = np.zeros((n, embedder.dim), dtype=np.float32)
    done = np.zeros(n, dtype=bool)
    digests: list[str | None] = [None] * n
    skipped: dict[int, dict] = {}
    known_rows: list[int] = []
    embedded = cached = 0
    if n:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        listing = ray.data.from_items([{"row": i, "path": p} for i, p in enumerate(items)])
        results = listing.map_batches(
            RayEmbedder,
            fn_constructor_args=(ray.put(embedder), worker_settings, job, cpus),
            batch_size=settings.batch_size,
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=cpus,
            num_gpus=1 if gpu else None,
            batch_format="numpy",
        )
        for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
            new = []
            for row, what, reason, digest, vector in zip(
                batch["row"], batch["what"], batch["reason"], batch["digest"], batch["vector"], strict=True
            ):
                i = int(row)
                digests[i] = str(digest) or None
                if what == "skip":
                    if on_error == "raise":
                        raise UnusableImage(items[i], str(reason))
                    skipped[i] = {"path": items[i], "reason": str(reason)}
                elif what == "known":
                    known_rows.append(i)
                elif what == "hit":
                    vectors[i], done[i] = store.get(str(digest)), True
                    cached += 1
                else:
                    vectors[i], done[i] = vector, True
                    embedded += 1
                    new.append(i)
            if store is not None and new:  # the driver's cache, one shard per batch, as on one machine
                store.put([digests[i] for i in new], vectors[new])
    kept = [int(i) for i in np.flatnonzero(done)]
    return EmbedResult(
        vectors=vectors[kept],
        kept=kept,
        skipped=[skipped[i] for i in sorted(skipped)],
        embedded=embedded,
        cached=cached,
        seconds=time.perf_counter() - start,
        settings={**settings.summary(), "engine": "ray", "actors": actors, "workers": cpus, "parallel": "ray"},
        digests=digests,
        known=sorted(known_rows),
    )
