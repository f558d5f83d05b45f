"""Embedding image files in batches: workers decode while the model runs, a cache skips known files.

Embedding a folder the simple way (open an image, preprocess it, run the model, next image)
leaves the model idle while files are decoded and the processor idle while the model runs. Here
workers (:mod:`.workers`) read, hash, decode and resize the next images while the model runs its
forward pass on the current batch; a bounded queue keeps memory flat however big the folder.
Every bad file is skipped with a reason instead of stopping the run, and every embedding is
stored on disk (:mod:`.cache`), so re-indexing an unchanged folder embeds nothing.

Used by :mod:`.build` and :mod:`.ray_engine`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ..embeddings import DEFAULT_BATCH_SIZE, PROGRESS_BAR_MIN, features_to_array
from ..errors import CourseError
from ..images import ImageLike, UnusableImage
from .cache import EmbeddingCache, preprocessing_signature
from .transforms import PixelRecipe, image_processor_of
from .workers import DecodeJob, default_workers, prepare, resolve_parallel

__all__ = [
    "PRECISIONS",
    "EmbedResult",
    "EmbedSettings",
    "autocast",
    "embed_files",
    "resolve_precision",
    "resolve_settings",
]

#: Batches prepared ahead of the model: enough to hide decoding jitter, few enough to bound memory.
PREFETCH_BATCHES = 4
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Where embedding runs: this Python's threads or processes, or a Ray cluster (the ``ray`` extra).


@dataclass(frozen=True)
class EmbedResult:
    """What :func:`embed_files` did: vectors for the ``kept`` inputs, and why the others were skipped.

    ``digests`` holds every input's content hash (None for a PIL image or an unreadable file);
    ``known`` lists the inputs left out because their hash was in ``known=``.
    """

    vectors: np.ndarray
    kept: list[int]
    skipped: list[dict]
    embedded: int
    cached: int
    seconds: float
    settings: dict = field(default_factory=dict)
    digests: list[str | None] = field(default_factory=list, repr=False)
    known: list[int] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return (self.embedded + self.cached) / self.seconds if self.seconds > 0 else float("inf")


def resolve_precision(precision: str, device: str) -> str:
    """``auto``: bf16 autocast on a CUDA GPU that has it (fp16 otherwise), fp32 elsewhere."""
    if precision not in PRECISIONS:
        raise CourseError(f"Unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}.")
    if precision != "auto":
        return precision
    if device.split(":")[0] != "cuda":
        return "fp32"
    import torch

    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def autocast(device: str, precision: str) -> Any:
    """Mixed-precision autocast for ``precision`` on ``device`` (nothing for fp32)."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


@dataclass(frozen=True)
class EmbedSettings:
    """How one run embeds: every choice :func:`embed_files` makes before the first image is read."""

    device: str
    batch_size: int
    workers: int
    parallel: str
    precision: str
    processor: Any
    recipe: PixelRecipe | None
    cache: EmbeddingCache | None
    draft: bool

    def summary(self) -> dict:
        """The settings as :attr:`EmbedResult.settings` reports them."""
        return {
            "batch_size": self.batch_size,
            "workers": self.workers,
            "parallel": self.parallel,
            "precision": self.precision,
            "preprocess": "recipe" if self.recipe is not None else "processor",
        }


def resolve_settings(
    embedder: Any,
    items: Sequence[ImageLike],
    *,
    batch_size: int | None = None,
    workers: int | None = None,
    cache: bool | str | os.PathLike | None = None,
    precision: str = "auto",
    preprocess: str = "fast",
    draft: bool = True,
    parallel: str = "auto",
) -> EmbedSettings:
    """Check the options of :func:`embed_files` and fill in the defaults for ``embedder``'s device."""
    if preprocess not in ("fast", "processor"):
        raise CourseError(f"preprocess must be 'fast' or 'processor', got {preprocess!r}.")
    device = str(embedder.device)
    batch_size = DEFAULT_BATCH_SIZE.get(device.split(":")[0], 16) if batch_size is None else batch_size
    if batch_size <= 0:
        raise CourseError(f"batch_size must be a positive number, got {batch_size}.")
    precision = resolve_precision(precision, device)
    processor = image_processor_of(embedder)
    recipe = PixelRecipe.from_processor(processor) if preprocess == "fast" else None
    parallel = resolve_parallel(parallel, device, recipe is not None, items)
    workers = default_workers(device, parallel) if workers is None else workers
    if workers <= 0:
        raise CourseError(f"workers must be a positive number, got {workers}.")
    store = None
    if cache:
        signature = preprocessing_signature(embedder, recipe, draft, precision)
        store = EmbeddingCache.for_embedder(embedder, signature, None if cache is True else cache).load()
    return EmbedSettings(device, batch_size, workers, parallel, precision, processor, recipe, store, draft)


class _BatchRunner:
    """Runs the model on batches of prepared pixels and files the vectors (and cache entries) away.

    On a CUDA GPU the copy back of batch k is collected only after batch k+1 was queued, so the
    GPU never waits for Python.
    """

    def __init__(self, embedder: Any, settings: EmbedSettings, vectors: np.ndarray, done: np.ndarray, bar: Any):
        self.embedder, self.settings, self.vectors, self.done, self.bar = embedder, settings, vectors, done, bar
        self.pinned = settings.device.split(":")[0] == "cuda"
        self.embedded = 0
        self._waiting: list[tuple[list[int], list[str | None], Any, Any]] = []

    def forward(self, batch: list[tuple[int, np.ndarray, str | None]]) -> None:
        import torch

        recipe = self.settings.recipe
        arrays = [pixels for _, pixels, _ in batch]
        dtype = torch.uint8 if recipe is not None else torch.float32
        host = torch.empty((len(arrays), *arrays[0].shape), dtype=dtype, pin_memory=self.pinned)
        np.stack(arrays, out=host.numpy())
        with torch.inference_mode():
            x = host.to(self.settings.device, non_blocking=self.pinned)
            if recipe is not None:
                x = recipe.to_pixel_values(x)
            with autocast(self.settings.device, self.settings.precision):
                output = self.embedder.model.get_image_features(pixel_values=x)
            output = (output if hasattr(output, "detach") else output.pooler_output).float()
            ready = None
            if self.pinned:  # queue the copy back now, so waiting for it does not wait for later batches
                output = output.to("cpu", non_blocking=True)
                ready = torch.cuda.Event()
                ready.record()
        if self._waiting:
            self.collect()
        self._waiting.append(([i for i, _, _ in batch], [d for _, _, d in batch], output, ready))
        if not self.pinned:
            self.collect()

    def collect(self) -> None:
        rows, digests, output, ready = self._waiting.pop()
        if ready is not None:
            ready.synchronize()  # this batch's copy only: the next batch keeps the GPU busy meanwhile
        array = features_to_array(output)
        self.vectors[rows] = array
        self.done[rows] = True
        self.embedded += len(rows)
        if self.settings.cache is not None:
            keep = [j for j, d in enumerate(digests) if d is not None]
            self.settings.cache.put([digests[j] for j in keep], array[keep])  # each batch lands on disk atomically
        self.bar.update(len(rows))

    def finish(self) -> None:
        while self._waiting:
            self.collect()


def embed_files(
    embedder: Any,
    images: Iterable[ImageLike],
    *,
    batch_size: int | None = None,
    workers: int | None = None,
    prefetch_batches: int = PREFETCH_BATCHES,
    cache: bool | str | os.PathLike | None = None,
    on_error: str = "skip",
    progress: bool | None = None,
    precision: str = "auto",
    preprocess: str = "fast",
    draft: bool = True,
    parallel: str = "auto",
    known: Collection[str] = (),
) -> EmbedResult:
    """Embed image files (or PIL images) with workers feeding the model, skipping bad files.

    Parameters
    ----------
    embedder : CLIPEmbedder
        The model (any object with ``model``, ``processor``, ``device``, ``model_id``, ``dim``).
    images : paths or PIL images
    batch_size : images per forward pass (default: 16 on a CPU, 128 on a CUDA GPU).
    workers : decoding threads or processes (default: :func:`~.workers.default_workers`).
    prefetch_batches : batches prepared ahead of the model; bounds memory.
    cache : True for the default on-disk cache, a folder for a cache there, None/False for none.
    on_error : ``"skip"`` collects ``{"path", "reason"}`` and goes on; ``"raise"`` stops at the first bad file.
    precision : ``auto`` (bf16/fp16 autocast on CUDA, fp32 elsewhere), ``fp32``, ``bf16`` or ``fp16``.
    preprocess : ``fast`` (:class:`PixelRecipe` when the processor is a CLIP one) or ``processor``.
    draft : let large JPEGs decode at reduced scale, never below the model's input size.
    parallel : ``threads``, ``processes`` (Linux) or ``auto`` (see :func:`~.workers.resolve_parallel`).
    known : content hashes to leave out unembedded (listed in ``known`` of the result), e.g. the
        records a database already holds.
    """
    from tqdm.auto import tqdm

    if on_error not in ("skip", "raise"):
        raise CourseError(f"on_error must be 'skip' or 'raise', got {on_error!r}.")
    items = list(images)
    settings = resolve_settings(
        embedder,
        items,
        batch_size=batch_size,
        workers=workers,
        cache=cache,
        precision=precision,
        preprocess=preprocess,
        draft=draft,
        parallel=parallel,
    )
    store = settings.cache
    job = DecodeJob(settings.recipe, settings.processor, store, settings.draft, frozenset(known))
    n = len(items)
    vectors = np.zeros((n, embedder.dim), dtype=np.float32)
    done = np.zeros(n, dtype=bool)
    digests: list[str | None] = [None] * n
    skipped: list[dict] = []
    known_rows: list[int] = []
    cached = 0
    start = time.perf_counter()
    show = n > PROGRESS_BAR_MIN if progress is None else progress
    bar = tqdm(total=n, disable=not show, desc="Embedding images", unit="img", smoothing=0.1)
    runner = _BatchRunner(embedder, settings, vectors, done, bar)
    ahead = settings.batch_size * prefetch_batches
    prepared = prepare(job, items, settings.workers, ahead, settings.parallel)
    try:
        batch: list[tuple[int, np.ndarray, str | None]] = []
        for i, item, what, payload, digest in prepared:
            digests[i] = digest
            if what == "hit":  # a worker process knows only that the cache has it: the vector is here
                vectors[i], done[i] = payload if payload is not None else store.get(digest), True
                cached += 1
                bar.update(1)
            elif what == "known":
                known_rows.append(i)
                bar.update(1)
            elif what == "skip":
                where = "<PIL image>" if isinstance(item, Image.Image) else str(item)
                if on_error == "raise":
                    raise UnusableImage(where, payload)
                skipped.append({"path": where, "reason": payload})
                bar.update(1)
            else:
                batch.append((i, payload, digest))
                if len(batch) == settings.batch_size:
                    runner.forward(batch)
                    batch = []
        if batch:
            runner.forward(batch)
        runner.finish()
    finally:
        bar.close()
        prepared.close()  # stops the workers, also on an error or Ctrl-C
    kept = [int(i) for i in np.flatnonzero(done)]
    return EmbedResult(
        vectors=vectors[kept],
        kept=kept,
        skipped=skipped,
        embedded=runner.embedded,
        cached=cached,
        seconds=time.perf_counter() - start,
        settings=settings.summary(),
        digests=digests,
        known=known_rows,
    )
