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

Introduced in 03_image_retrieval (exercise: index your own photos).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import math
import os
import secrets
import stat
import sys
import threading
import time
import zipfile
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .catalog import Product, load_catalog, slugify, write_atomic
from .embeddings import DEFAULT_BATCH_SIZE, PROGRESS_BAR_MIN, features_to_array
from .errors import CourseError
from .images import ImageLike, UnusableImage, open_image, read_error_reason, to_rgb

#: File types a photo folder is scanned for (anything Pillow reads; HEIC gets a hint to install pillow-heif).
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .apng .gif .webp .bmp .dib .tif .tiff .ppm .pgm .pbm .pnm .tga .ico .avif".split()
    + [".heic", ".heif"]
)
#: Files in an image folder that are part of it but not images: never reported as skipped.
IGNORED_NAMES = frozenset({"catalog.json", "Thumbs.db", "desktop.ini"})
#: Files up to this size are read once into memory (hash + decode from the same bytes); bigger ones are streamed.
READ_IN_MEMORY_BYTES = 64 * 2**20
#: Batches prepared ahead of the model: enough to hide decoding jitter, few enough to bound memory.
PREFETCH_BATCHES = 4
#: Shards beyond which the embedding cache is merged into one file when opened.
MAX_CACHE_SHARDS = 64
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

_open = open  # the one place files are opened, so tests can simulate unreadable files


# --------------------------------------------------------------------------- preprocessing


def _field(obj: Any, key: str) -> Any:
    """Read ``key`` from a size dict (transformers 4.x) or a ``SizeDict`` (5.x)."""
    if obj is None:
        return None
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _pil_resample(value: Any) -> int | None:
    """A PIL resampling filter from a PIL int/enum or a torchvision ``InterpolationMode``."""
    if isinstance(value, int):
        return int(value)
    name = str(getattr(value, "name", value)).upper().replace("_EXACT", "")
    member = getattr(Image.Resampling, name, None)
    return int(member) if member is not None else None


@dataclass(frozen=True)
class PixelRecipe:
    """What a CLIP image processor does, split in two: a cheap-to-parallelise half and a batched half.

    :meth:`prepare` (worker threads) resizes and centre-crops with PIL, which releases the GIL, and
    returns uint8 pixels; :meth:`to_pixel_values` (once per batch, on the model's device) rescales
    and normalises. Together they give what ``CLIPImageProcessor`` gives with its PIL backend (the
    torchvision backend resamples slightly differently). Sending uint8 to a GPU also moves 4x fewer bytes.
    """

    shortest_edge: int | None
    height_width: tuple[int, int] | None
    resample: int
    crop: tuple[int, int] | None
    scale: float | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None

    @classmethod
    def from_processor(cls, image_processor: Any) -> PixelRecipe | None:
        """The recipe of a CLIP image processor, or None for one it cannot reproduce (then the processor runs)."""
        if type(image_processor).__name__ not in (
            "CLIPImageProcessor",
            "CLIPImageProcessorPil",
            "CLIPImageProcessorFast",
        ):
            return None
        ip = image_processor
        if getattr(ip, "do_pad", False):
            return None
        shortest = hw = None
        resample = Image.Resampling.BICUBIC
        if getattr(ip, "do_resize", False):
            size = ip.size
            shortest, longest = _field(size, "shortest_edge"), _field(size, "longest_edge")
            height, width = _field(size, "height"), _field(size, "width")
            if shortest and not longest:
                shortest = int(shortest)
            elif height and width and not shortest:
                hw = (int(height), int(width))
            else:
                return None
            resample = _pil_resample(getattr(ip, "resample", None))
            if resample is None:
                return None
        crop = None
        if getattr(ip, "do_center_crop", False):
            crop = (int(_field(ip.crop_size, "height")), int(_field(ip.crop_size, "width")))
        if crop is None and hw is None:
            return None  # sizes would vary from image to image: leave it to the processor
        scale = float(ip.rescale_factor) if getattr(ip, "do_rescale", False) else None
        mean = std = None
        if getattr(ip, "do_normalize", False):
            mean, std = (np.broadcast_to(np.asarray(v, dtype=float), (3,)) for v in (ip.image_mean, ip.image_std))
            mean, std = tuple(map(float, mean)), tuple(map(float, std))
        return cls(shortest, hw, int(resample), crop, scale, mean, std)

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) after the resize, by the rule the processor uses."""
        if self.height_width:
            return self.height_width[1], self.height_width[0]
        if not self.shortest_edge:
            return width, height
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(self.shortest_edge * long / short)
        return (self.shortest_edge, new_long) if width <= height else (new_long, self.shortest_edge)

    @property
    def min_side(self) -> int | None:
        """The smallest source side that loses nothing: big JPEGs may be decoded down to it."""
        if self.height_width:
            return max(self.height_width)
        return self.shortest_edge

    def prepare(self, image: Image.Image) -> np.ndarray:
        """Resize and centre-crop an RGB image: (height, width, 3) uint8."""
        size = self.output_size(*image.size)
        if size != image.size:
            image = image.resize(size, resample=self.resample, reducing_gap=None)
        pixels = np.asarray(image, dtype=np.uint8)
        if self.crop is None:
            return pixels
        return _center_crop(pixels, *self.crop)

    def to_pixel_values(self, batch: Any) -> Any:
        """(n, h, w, 3) uint8 tensor -> (n, 3, h, w) float32 ``pixel_values``, on the batch's device."""
        import torch

        x = batch.permute(0, 3, 1, 2).to(torch.float32)
        if self.scale is not None:
            x = x * self.scale
        if self.mean is not None:
            mean, std = _mean_std(self.mean, self.std, str(x.device))
            x = (x - mean) / std
        return x.contiguous()


@functools.lru_cache(maxsize=8)
def _mean_std(mean: tuple[float, ...], std: tuple[float, ...], device: str) -> tuple[Any, Any]:
    """Normalisation constants made once per device: a fresh copy per batch would stall a GPU's queue."""
    import torch

    def shaped(values: tuple[float, ...]) -> Any:
        return torch.tensor(values, dtype=torch.float32, device=device).view(1, 3, 1, 1)

    return shaped(mean), shaped(std)


def _center_crop(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre crop, zero-padding a side that is too short, exactly as transformers does."""
    h, w = pixels.shape[:2]
    if h >= height and w >= width:
        top, left = (h - height) // 2, (w - width) // 2
        return np.ascontiguousarray(pixels[top : top + height, left : left + width])
    out = np.zeros((height, width, pixels.shape[2]), dtype=pixels.dtype)
    src_top, dst_top = ((h - height) // 2, 0) if h >= height else (0, math.ceil((height - h) / 2))
    src_left, dst_left = ((w - width) // 2, 0) if w >= width else (0, math.ceil((width - w) / 2))
    rows, cols = min(h, height), min(w, width)
    out[dst_top : dst_top + rows, dst_left : dst_left + cols] = pixels[
        src_top : src_top + rows, src_left : src_left + cols
    ]
    return out


def image_processor_of(embedder: Any) -> Any:
    """The image half of a ``CLIPProcessor`` (or the processor itself if it is one already)."""
    return getattr(embedder.processor, "image_processor", embedder.processor)


# --------------------------------------------------------------------------- reading files


def read_and_hash(path: Path) -> tuple[bytes | None, str]:
    """The file's bytes (None for a file too big to hold; it is then decoded from disk) and content hash.

    Raises :class:`UnusableImage` when the file cannot be read.
    """
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            reason = "is a directory, not an image" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise UnusableImage(path, reason)
        digest = hashlib.blake2b(digest_size=20)
        with _open(path, "rb") as fh:
            if info.st_size <= READ_IN_MEMORY_BYTES:
                data = fh.read()
                digest.update(data)
                return data, digest.hexdigest()
            for chunk in iter(lambda: fh.read(2**20), b""):
                digest.update(chunk)
        return None, digest.hexdigest()
    except OSError as exc:
        raise UnusableImage(path, read_error_reason(path, exc)) from None


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

    Introduced in 03_image_retrieval.
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
    """What :func:`embed_images` did: vectors for the ``kept`` inputs, and why the others were skipped.

    Introduced in 03_image_retrieval.
    """

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


#: More decoding threads than this fight over Python's GIL: on a 16-core H200 machine 4 threads
#: decoded 1,770 images/s, 8 threads 1,810, 16 threads 1,470 (and 16 processes 5,500).
MAX_THREADS = 8
PARALLEL = ("auto", "threads", "processes")
#: Images a worker process prepares per message: big enough to make the hand-over cheap, small
#: enough that every core gets work on a folder of a few hundred images.
PROCESS_CHUNK = 32


def cpu_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def can_fork() -> bool:
    """Whether worker processes can start by forking (Linux): cheap, and unlike ``spawn`` it does not run
    the caller's script again in each worker (a surprise in scripts without a ``__main__`` guard)."""
    return sys.platform.startswith("linux")


def resolve_parallel(parallel: str, device: str, fast: bool, items: Sequence[Any]) -> str:
    """``auto``: processes next to a CUDA GPU (when they can fork and every input is a file), threads otherwise.

    A CPU spends ~40 ms per ViT-B/32 image in the model and ~1 ms decoding it, so threads suffice
    there; a GPU needs ~0.05 ms, so decoding must use every core.
    """
    if parallel not in PARALLEL:
        raise CourseError(f"parallel must be one of {', '.join(PARALLEL)}, got {parallel!r}.")
    if parallel == "processes" and not fast:
        raise CourseError("parallel='processes' needs preprocess='fast' and a CLIP image processor.")
    if parallel == "processes" and not can_fork():
        raise CourseError("parallel='processes' needs a system that can fork processes (Linux); use 'threads'.")
    if parallel != "auto":
        return parallel
    files_only = not any(isinstance(item, Image.Image) for item in items)
    use_processes = device.split(":")[0] == "cuda" and fast and files_only and can_fork() and cpu_cores() > 2
    return "processes" if use_processes else "threads"


def default_workers(device: str, parallel: str = "threads") -> int:
    """Decoding workers: a process per core; else up to 8 threads next to a GPU, half the cores on a CPU."""
    cores = cpu_cores()
    if parallel == "processes":
        return cores
    return max(1, min(MAX_THREADS, cores if device.split(":")[0] in ("cuda", "mps") else cores // 2))


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
    import contextlib

    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


@dataclass
class _Job:
    """What a worker needs: shared, read-only while the pool runs."""

    recipe: PixelRecipe | None
    processor: Any
    cache: EmbeddingCache | None
    draft: bool

    def run(self, item: Any) -> tuple[str, Any, str | None]:
        """('hit', vector, digest) | ('pixels', array, digest) | ('skip', reason, None)."""
        try:
            digest = None
            if isinstance(item, Image.Image):
                image = to_rgb(item)
            else:
                path = Path(item)
                data, digest = read_and_hash(path)
                if self.cache is not None and digest in self.cache:
                    return "hit", self.cache.get(digest), digest
                min_side = self.recipe.min_side if (self.recipe is not None and self.draft) else None
                image = open_image(data if data is not None else path, min_size=min_side, name=path.name)
            if self.recipe is not None:
                return "pixels", self.recipe.prepare(image), digest
            return "pixels", self.processor(images=[image], return_tensors="np")["pixel_values"][0], digest
        except UnusableImage as exc:
            return "skip", exc.reason, None
        except MemoryError:
            return "skip", "not enough memory to decode it", None
        except Exception as exc:  # a damaged file can make any decoder fail in its own way: skip it, say why
            return "skip", f"could not be decoded ({type(exc).__name__}: {exc})", None


#: One prepared input: (position, the input, 'hit' | 'pixels' | 'skip', vector | pixels | reason, digest).
Prepared = tuple[int, Any, str, Any, str | None]


def prepare_in_threads(job: _Job, items: Sequence[Any], workers: int, ahead: int) -> Iterator[Prepared]:
    """Run ``job`` on every input in a thread pool, in order, with at most ``ahead`` inputs in flight."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="embed")
    try:
        pending: deque = deque()
        feed = iter(enumerate(items))
        limit = max(ahead, workers * 2)

        def refill() -> None:
            while len(pending) < limit:
                nxt = next(feed, None)
                if nxt is None:
                    return
                pending.append((*nxt, pool.submit(job.run, nxt[1])))

        refill()
        while pending:
            i, item, future = pending.popleft()
            refill()
            yield (i, item, *future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _CachedDigests:
    """What a worker process knows of the cache: which digests it holds, not the vectors (the caller has those)."""

    def __init__(self, digests: Iterable[str]):
        self.digests = frozenset(digests)

    def __contains__(self, digest: str) -> bool:
        return digest in self.digests

    def get(self, digest: str) -> None:
        return None


def _collate(rows: list[tuple[int, str, Any, str | None]]) -> tuple[list, Any]:
    """A chunk's results, its pixels as one tensor: torch's queues pass a tensor through shared memory."""
    import torch

    pixels = [payload for _, what, payload, _ in rows if what == "pixels"]
    stacked = torch.from_numpy(np.stack(pixels)) if pixels else None
    return [(k, what, None if what == "pixels" else payload, digest) for k, what, payload, digest in rows], stacked


def _detach_from_parent(keep: set[int]) -> None:
    """In a freshly forked worker: die with the parent, and let go of the files and pipes it had open.

    A fork copies every open file descriptor. A worker holding a copy of, say, the write end of a
    pipe another program reads would keep that program waiting for an end of file that never comes;
    each such descriptor is pointed at /dev/null instead (not closed, so no number is reused).
    """
    import ctypes
    import signal

    parent = os.getppid()
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG: no orphan outlives a killed kernel
    if os.getppid() != parent:
        os._exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle: it stops the pool
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in [int(name) for name in os.listdir("/proc/self/fd")]:
        if fd > 2 and fd != devnull and fd not in keep:
            with contextlib.suppress(OSError):
                os.dup2(devnull, fd)


def _serve(inbox: Any, outbox: Any) -> None:
    """A worker process: take a job, then chunks of ``(position, input)``, and send back each chunk prepared."""
    import torch

    _detach_from_parent({inbox._reader.fileno(), outbox._writer.fileno()})
    torch.set_num_threads(1)
    job = None
    for message in iter(inbox.get, None):
        if isinstance(message, _Job):
            job = message
        else:
            outbox.put(_collate([(k, *job.run(item)) for k, item in message]))


class ProcessPool:
    """Worker processes that decode and resize images, forked once and reused by every later call.

    Starting a dozen processes from a Python that holds a CUDA model takes a noticeable fraction
    of a second, as long as embedding thousands of images, so the pool outlives the call. Each
    worker has its own inbox and outbox: chunk j goes to worker j mod n, so reading the outboxes
    in turn gives the results back in order.
    """

    def __init__(self, workers: int):
        import torch.multiprocessing as mp

        context = mp.get_context("fork")
        self.inboxes = [context.SimpleQueue() for _ in range(workers)]
        self.outboxes = [context.Queue() for _ in range(workers)]
        self.processes = [
            context.Process(target=_serve, args=(inbox, outbox), daemon=True, name=f"embed-worker-{i}")
            for i, (inbox, outbox) in enumerate(zip(self.inboxes, self.outboxes, strict=True))
        ]
        for process in self.processes:
            process.start()

    def __len__(self) -> int:
        return len(self.processes)

    def alive(self) -> bool:
        return all(process.is_alive() for process in self.processes)

    def send(self, worker: int, message: Any) -> None:
        self.inboxes[worker].put(message)

    def receive(self, worker: int) -> Any:
        import queue

        while True:
            try:
                return self.outboxes[worker].get(timeout=1.0)
            except queue.Empty:
                if not self.processes[worker].is_alive():
                    raise CourseError(
                        "An image-decoding worker process stopped (out of memory?). Try parallel='threads'."
                    ) from None

    def close(self) -> None:
        for process in self.processes:
            process.kill()
            process.join()


_pool: ProcessPool | None = None
_pool_in_use = threading.Lock()  # one call at a time: the workers' queues carry one run's chunks


def _discard_pool() -> None:
    """Stop the pool, e.g. one that may hold half-finished work after an error or Ctrl-C."""
    global _pool
    if _pool is not None:
        _pool.close()
        _pool = None


def process_pool(workers: int) -> ProcessPool:
    """The session's :class:`ProcessPool`, started (again) when the number of workers changes or one died."""
    global _pool
    if _pool is not None and (len(_pool) != workers or not _pool.alive()):
        _discard_pool()
    if _pool is None:
        _pool = ProcessPool(workers)
    return _pool


def prepare_in_processes(job: _Job, items: Sequence[Any], workers: int, ahead: int) -> Iterator[Prepared]:
    """Like :func:`prepare_in_threads`, on the :class:`ProcessPool`, in order.

    Each worker gets the job once (the recipe and which digests the cache holds), then chunks of
    :data:`PROCESS_CHUNK` inputs; it sends a chunk's pixels back as one shared-memory tensor.
    """
    size = max(1, min(PROCESS_CHUNK, math.ceil(len(items) / workers)))
    chunks = [range(start, min(start + size, len(items))) for start in range(0, len(items), size)]
    in_flight = workers * max(2, math.ceil(ahead / (size * workers)))
    worker_job = _Job(job.recipe, None, _CachedDigests(job.cache.digests()) if job.cache else None, job.draft)
    with _pool_in_use:
        pool = process_pool(workers)

        def send(j: int) -> None:
            pool.send(j % workers, [(k, items[k]) for k in chunks[j]])

        finished = False
        try:
            for worker in range(workers):
                pool.send(worker, worker_job)
            for j in range(min(len(chunks), in_flight)):
                send(j)
            for j in range(len(chunks)):
                rows, stacked = pool.receive(j % workers)
                if j + in_flight < len(chunks):
                    send(j + in_flight)
                pixels = iter(stacked.numpy()) if stacked is not None else iter(())
                for k, what, payload, digest in rows:
                    yield k, items[k], what, next(pixels) if what == "pixels" else payload, digest
            finished = True
        finally:
            if not finished:
                _discard_pool()


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

    Introduced in 03_image_retrieval.
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
    job = _Job(recipe, processor, store, draft)
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
    prepare = prepare_in_processes if parallel == "processes" else prepare_in_threads
    prepared = prepare(job, items, workers, batch_size * prefetch_batches)
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
    ``cache=False``. Introduced in 03_image_retrieval (exercise: index your own photos).
    """
    products, paths, skipped = folder_inputs(folder, catalog)
    options.setdefault("cache", True)
    return build_index(products, paths, embedder, skipped=skipped, **options)[0]
