"""Indexing real photo folders: fast, cached on disk, and robust to bad files.

Embedding a folder the simple way (open an image, preprocess it, run the model, next image)
leaves the model idle while files are decoded and the processor idle while the model runs. Here
workers read, hash, decode and resize the next images while the model runs its forward pass on
the current batch; a bounded queue keeps memory flat however big the folder. On a CPU the model
is the slow part and a few threads keep it fed; a GPU embeds thousands of images a second, more
than threads sharing Python's GIL can decode, so there every core decodes in its own process.
Every bad file is skipped with a reason instead of stopping the run, and every embedding is
stored on disk under the model and the file's content hash, so re-indexing an unchanged folder
embeds nothing and adding ten photos embeds ten.

Introduced in 06_exercises (exercise (a): index your own photos).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
import time
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .catalog import Product, load_catalog, slugify, write_atomic
from .decoding import (
    DecodeJob,
    PixelRecipe,
    default_workers,
    image_processor_of,
    prepare,
    resolve_parallel,
)
from .embeddings import DEFAULT_BATCH_SIZE, PROGRESS_BAR_MIN, features_to_array
from .errors import CourseError
from .images import ImageLike, UnusableImage, read_error_reason

#: File types a photo folder is scanned for (anything Pillow reads; HEIC gets a hint to install pillow-heif).
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .apng .gif .webp .bmp .dib .tif .tiff .ppm .pgm .pbm .pnm .tga .ico .avif".split()
    + [".heic", ".heif"]
)
#: Files in an image folder that are part of it but not images: never reported as skipped.
IGNORED_NAMES = frozenset({"catalog.json", "Thumbs.db", "desktop.ini"})
#: Batches prepared ahead of the model: enough to hide decoding jitter, few enough to bound memory.
PREFETCH_BATCHES = 4
#: Shards beyond which the embedding cache is merged into one file when opened.
MAX_CACHE_SHARDS = 64
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


# --------------------------------------------------------------------------- the embedding cache


def cache_root() -> Path:
    """``cache_dir()/embeddings``: where :class:`EmbeddingCache` keeps its files by default."""
    from .workspace import cache_dir

    return cache_dir() / "embeddings"


class EmbeddingCache:
    """Image embeddings on disk, keyed by model (+ preprocessing) and the image file's content hash.

    Append-only: each :meth:`put` writes one small ``.npz`` shard atomically (temp file, then
    rename), so a crash or Ctrl-C keeps every batch that finished and never leaves half a file.
    Renaming or moving a photo keeps its cache entry; editing it makes a new one.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self._vectors: dict[str, np.ndarray] = {}
        self._loaded = False

    @classmethod
    def for_embedder(cls, embedder: Any, signature: str = "", root: str | os.PathLike | None = None) -> EmbeddingCache:
        """The cache folder ``<root>/<model-id-slug>/<hash of signature>`` for this model's embeddings."""
        base = Path(root) if root is not None else cache_root()
        tag = hashlib.sha256(signature.encode()).hexdigest()[:10]
        return cls(base / slugify(embedder.model_id)[:80] / tag)

    def __len__(self) -> int:
        self.load()
        return len(self._vectors)

    def __contains__(self, digest: str) -> bool:
        self.load()
        return digest in self._vectors

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.directory)!r}, {len(self)} entries)"

    def shards(self) -> list[Path]:
        return sorted(self.directory.glob("*.npz")) if self.directory.is_dir() else []

    def load(self) -> EmbeddingCache:
        """Read every shard once; a damaged shard is ignored (its images are simply embedded again)."""
        if self._loaded:
            return self
        shards = self.shards()
        for shard in shards:
            entries = self._read_shard(shard)
            if entries is not None:
                self._vectors.update(entries)
        self._loaded = True
        if len(shards) > MAX_CACHE_SHARDS:
            self.compact(shards)
        return self

    @staticmethod
    def _read_shard(path: Path) -> dict[str, np.ndarray] | None:
        try:
            with np.load(path, allow_pickle=False) as data:
                digests, vectors = data["digests"], data["vectors"]
            if vectors.ndim != 2 or len(digests) != len(vectors):
                return None
            return {str(d): v for d, v in zip(digests, vectors.astype(np.float32), strict=True)}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None

    def get(self, digest: str) -> np.ndarray | None:
        self.load()
        return self._vectors.get(digest)

    def digests(self) -> list[str]:
        self.load()
        return list(self._vectors)

    def put(self, digests: Sequence[str], vectors: np.ndarray) -> Path | None:
        """Store one batch's embeddings as one shard, atomically. Returns the shard's path."""
        self.load()
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(digests) != len(vectors):
            raise ValueError("one digest per vector")
        if not len(digests):
            return None
        buffer = io.BytesIO()
        np.savez(buffer, digests=np.array(list(digests), dtype=str), vectors=vectors)
        path = self.directory / f"{time.time_ns():016x}-{os.getpid()}-{secrets.token_hex(4)}.npz"
        write_atomic(path, buffer.getvalue())
        self._vectors.update(zip(digests, vectors, strict=True))
        return path

    def compact(self, shards: Iterable[Path] | None = None) -> None:
        """Merge the shards into one (written before the old ones are removed, so a crash loses nothing)."""
        shards = list(self.shards() if shards is None else shards)
        if len(shards) < 2:
            return
        digests = list(self._vectors)
        buffer = io.BytesIO()
        np.savez(buffer, digests=np.array(digests, dtype=str), vectors=np.stack([self._vectors[d] for d in digests]))
        write_atomic(self.directory / f"{time.time_ns():016x}-{os.getpid()}-merged.npz", buffer.getvalue())
        for shard in shards:
            shard.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the pipeline


@dataclass(frozen=True)
class EmbedResult:
    """What :func:`embed_images` did: vectors for the ``kept`` inputs, and why the others were skipped."""

    vectors: np.ndarray
    kept: list[int]
    skipped: list[dict]
    embedded: int
    cached: int
    seconds: float
    settings: dict = field(default_factory=dict)

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


def _autocast(device: str, precision: str):
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def preprocessing_signature(embedder: Any, recipe: PixelRecipe | None, draft: bool, precision: str) -> str:
    """Everything besides the model that changes an embedding: part of the cache key."""
    if recipe is not None:
        prep: Any = asdict(recipe)
    else:
        ip = image_processor_of(embedder)
        prep = ip.to_dict() if hasattr(ip, "to_dict") else repr(ip)
    return json.dumps({"prep": prep, "draft": draft, "precision": precision}, sort_keys=True, default=str)


def embed_images(
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
) -> EmbedResult:
    """Embed image files (or PIL images) with workers feeding the model, skipping bad files.

    Parameters
    ----------
    embedder : CLIPEmbedder
        The model (any object with ``model``, ``processor``, ``device``, ``model_id``, ``dim``).
    images : paths or PIL images
    batch_size : images per forward pass (default: 16 on a CPU, 128 on a CUDA GPU).
    workers : decoding threads or processes (default: :func:`default_workers`).
    prefetch_batches : batches prepared ahead of the model; bounds memory.
    cache : True for the default on-disk cache, a folder for a cache there, None/False for none.
    on_error : ``"skip"`` collects ``{"path", "reason"}`` and goes on; ``"raise"`` stops at the first bad file.
    precision : ``auto`` (bf16/fp16 autocast on CUDA, fp32 elsewhere), ``fp32``, ``bf16`` or ``fp16``.
    preprocess : ``fast`` (:class:`PixelRecipe` when the processor is a CLIP one) or ``processor``.
    draft : let large JPEGs decode at reduced scale, never below the model's input size.
    parallel : ``threads``, ``processes`` (Linux) or ``auto`` (see :func:`resolve_parallel`).
    """
    import torch
    from tqdm.auto import tqdm

    if on_error not in ("skip", "raise"):
        raise CourseError(f"on_error must be 'skip' or 'raise', got {on_error!r}.")
    if preprocess not in ("fast", "processor"):
        raise CourseError(f"preprocess must be 'fast' or 'processor', got {preprocess!r}.")
    items = list(images)
    device = str(embedder.device)
    kind = device.split(":")[0]
    batch_size = batch_size or DEFAULT_BATCH_SIZE.get(kind, 16)
    if batch_size <= 0:
        raise CourseError(f"batch_size must be a positive number, got {batch_size}.")
    precision = resolve_precision(precision, device)
    processor = image_processor_of(embedder)
    recipe = PixelRecipe.from_processor(processor) if preprocess == "fast" else None
    parallel = resolve_parallel(parallel, device, recipe is not None, items)
    workers = workers or default_workers(device, parallel)
    if workers <= 0:
        raise CourseError(f"workers must be a positive number, got {workers}.")
    store = None
    if cache:
        signature = preprocessing_signature(embedder, recipe, draft, precision)
        root = None if cache is True else cache
        store = EmbeddingCache.for_embedder(embedder, signature, root).load()
    job = DecodeJob(recipe, processor, store, draft)
    settings = {
        "batch_size": batch_size,
        "workers": workers,
        "parallel": parallel,
        "precision": precision,
        "preprocess": "recipe" if recipe is not None else "processor",
    }

    n = len(items)
    vectors = np.zeros((n, embedder.dim), dtype=np.float32)
    done = np.zeros(n, dtype=bool)
    skipped: list[dict] = []
    counts = {"embedded": 0, "cached": 0}
    pinned = kind == "cuda"
    defer = kind == "cuda"  # let the GPU run batch k while batch k+1 is assembled
    waiting: list[tuple[list[int], list[str | None], Any, Any]] = []

    def collect() -> None:
        rows, digests, output, ready = waiting.pop()
        if ready is not None:
            ready.synchronize()  # this batch's copy only: the next batch keeps the GPU busy meanwhile
        array = features_to_array(output)
        vectors[rows] = array
        done[rows] = True
        counts["embedded"] += len(rows)
        if store is not None:
            keep = [j for j, d in enumerate(digests) if d is not None]
            store.put([digests[j] for j in keep], array[keep])  # each batch lands on disk atomically
        bar.update(len(rows))

    def forward(batch: list[tuple[int, np.ndarray, str | None]]) -> None:
        arrays = [pixels for _, pixels, _ in batch]
        shape = (len(arrays), *arrays[0].shape)
        dtype = torch.uint8 if recipe is not None else torch.float32
        host = torch.empty(shape, dtype=dtype, pin_memory=pinned)
        np.stack(arrays, out=host.numpy())
        with torch.inference_mode():
            x = host.to(device, non_blocking=pinned)
            if recipe is not None:
                x = recipe.to_pixel_values(x)
            with _autocast(device, precision):
                output = embedder.model.get_image_features(pixel_values=x)
            output = output if hasattr(output, "detach") else output.pooler_output
            output = output.float()
            ready = None
            if pinned:  # queue the copy back now, so waiting for it does not wait for later batches
                output = output.to("cpu", non_blocking=True)
                ready = torch.cuda.Event()
                ready.record()
        if waiting:
            collect()
        waiting.append(([i for i, _, _ in batch], [d for _, _, d in batch], output, ready))
        if not defer:
            collect()

    start = time.perf_counter()
    show = n > PROGRESS_BAR_MIN if progress is None else progress
    bar = tqdm(total=n, disable=not show, desc="Embedding images", unit="img", smoothing=0.1)
    prepared = prepare(job, items, workers, batch_size * prefetch_batches, parallel)
    try:
        batch: list[tuple[int, np.ndarray, str | None]] = []
        for i, item, what, payload, digest in prepared:
            if what == "hit":  # a worker process knows only that the cache has it: the vector is here
                vectors[i], done[i] = payload if payload is not None else store.get(digest), True
                counts["cached"] += 1
                bar.update(1)
            elif what == "skip":
                where = "<PIL image>" if isinstance(item, Image.Image) else str(item)
                if on_error == "raise":
                    raise UnusableImage(where, payload)
                skipped.append({"path": where, "reason": payload})
                bar.update(1)
            else:
                batch.append((i, payload, digest))
                if len(batch) == batch_size:
                    forward(batch)
                    batch = []
        if batch:
            forward(batch)
        while waiting:
            collect()
    finally:
        bar.close()
        prepared.close()  # stops the workers, also on an error or Ctrl-C
    kept = [int(i) for i in np.flatnonzero(done)]
    return EmbedResult(
        vectors=vectors[kept],
        kept=kept,
        skipped=skipped,
        embedded=counts["embedded"],
        cached=counts["cached"],
        seconds=time.perf_counter() - start,
        settings=settings,
    )


# --------------------------------------------------------------------------- folders and indexes


def scan_folder(folder: str | os.PathLike) -> tuple[list[Path], list[dict]]:
    """Image files under ``folder`` (recursively, sorted), and the other files as ``{"path", "reason"}``.

    Hidden files and folders, and ``catalog.json``, are ignored. Symbolic links to folders are not
    followed, so a link loop cannot trap the scan; a link that loops back on itself is reported.
    Introduced in 06_exercises.
    """
    folder = Path(folder)
    images: list[Path] = []
    skipped: list[dict] = []

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else folder
        skipped.append({"path": str(where), "reason": f"cannot list this folder ({read_error_reason(where, exc)})"})

    for root, dirs, files in os.walk(folder, onerror=unreadable, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or name in IGNORED_NAMES:
                continue
            path = Path(root) / name
            suffix = path.suffix.lower()
            if suffix in IMAGE_EXTENSIONS:
                images.append(path)
            else:
                what = f"'{suffix}'" if suffix else "no extension"
                skipped.append({"path": str(path), "reason": f"not an image file type ({what})"})
    images.sort(key=lambda p: str(p.relative_to(folder)))
    return images, skipped


def folder_inputs(
    folder: str | os.PathLike, catalog: str | os.PathLike | None = None
) -> tuple[list[Product], list[Path], list[dict]]:
    """Products, image paths and already-skipped files for a folder.

    With a ``catalog.json`` (in the folder or given) the catalog names the images
    (``<slug>.png``); without one every image file is a product named after its file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CourseError(f"{folder} is not a folder of images.")
    catalog_path = Path(catalog) if catalog else folder / "catalog.json"
    if catalog or catalog_path.is_file():
        products = load_catalog(catalog_path)
        return products, [folder / f"{p.slug}.png" for p in products], []
    paths, skipped = scan_folder(folder)
    return [Product.from_file_name(p.stem) for p in paths], paths, skipped


def build_index(
    products: Sequence[Product],
    paths: Sequence[str | os.PathLike],
    embedder: Any,
    *,
    skipped: Sequence[dict] = (),
    **options: Any,
) -> tuple[Any, EmbedResult]:
    """Embed ``paths`` with :func:`embed_images` and make an :class:`~course_utils.index.ImageIndex` of the usable ones.

    ``options`` go to :func:`embed_images`. Raises :class:`CourseError` when no image is usable.
    """
    from .index import ImageIndex

    if len(products) != len(paths):
        raise ValueError("one product per image path")
    result = embed_images(embedder, paths, **options)
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


def index_folder(
    folder: str | os.PathLike,
    embedder: Any,
    catalog: str | os.PathLike | None = None,
    **options: Any,
) -> Any:
    """Index every image in a folder (a photo folder, or a rendered catalog with its ``catalog.json``).

    Bad files are skipped and listed in ``index.skipped``; embeddings are cached on disk unless
    ``cache=False``. Introduced in 06_exercises (exercise (a): index your own photos).
    """
    products, paths, skipped = folder_inputs(folder, catalog)
    options.setdefault("cache", True)
    return build_index(products, paths, embedder, skipped=skipped, **options)[0]
