"""From image files to model-ready pixels, in parallel: the half of indexing that is not the model.

Each input is read once, hashed (the embedding cache's key), decoded, turned upright, resized and
centre-cropped the way the model's image processor would; the cheap-to-parallelise part runs in
workers while the model works on the previous batch. Threads are enough beside a CPU's slow
model; beside a GPU every core decodes in a worker process of its own, because threads share
Python's GIL and could not keep up. The worker processes are PyTorch's own
``torch.utils.data.DataLoader`` with persistent workers, kept between calls.

Used by :mod:`course_utils.indexing.embed`; introduced in 03_image_retrieval (exercise: index your own photos).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
import os
import pickle
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import CourseError
from ..files import open_regular
from ..images import UnusableImage, open_image, read_error_reason
from .transforms import PixelRecipe

__all__ = [
    "MAX_THREADS",
    "PARALLEL",
    "DecodeJob",
    "cpu_cores",
    "default_workers",
    "prepare",
    "read_and_hash",
    "resolve_parallel",
    "stop_worker_processes",
    "worker_processes",
]

#: Files up to this size are read once into memory (hash + decode from the same bytes); bigger ones are streamed.
READ_IN_MEMORY_BYTES = 64 * 2**20

_open = open_regular  # the one place files are opened, so tests can simulate unreadable files


def read_and_hash(path: Path) -> tuple[bytes | None, str]:
    """The file's bytes (None for a file too big to hold; it is then decoded from disk) and content hash.

    Only a regular file is read: a FIFO, a device or a folder is refused before its first byte.
    Raises :class:`UnusableImage` when the file cannot be read.
    """
    try:
        digest = hashlib.blake2b(digest_size=20)
        with _open(path) as fh:
            if os.fstat(fh.fileno()).st_size <= READ_IN_MEMORY_BYTES:
                data = fh.read()
                digest.update(data)
                return data, digest.hexdigest()
            for chunk in iter(lambda: fh.read(2**20), b""):
                digest.update(chunk)
        return None, digest.hexdigest()
    except OSError as exc:
        raise UnusableImage(path, read_error_reason(path, exc)) from None


# --------------------------------------------------------------------------- in parallel


#: More decoding threads than this fight over Python's GIL: on a 16-core H200 machine 4 threads
#: decoded 1,770 images/s, 8 threads 1,810, 16 threads 1,470 (16 processes: 5,500 to 7,000).
MAX_THREADS = 8
PARALLEL = ("auto", "threads", "processes")
#: Images a worker process prepares per message: big enough to make the hand-over cheap, small
#: enough that every core gets work on a folder of a few hundred images.
PROCESS_CHUNK = 32
#: /dev/shm space below which ``auto`` keeps to threads: chunks in flight take ~150 MB at 224 px,
#: and a container's default 64 MB /dev/shm would make worker processes crash.
SHARED_MEMORY_NEEDED = 512 * 2**20


def cpu_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def can_fork() -> bool:
    """Whether worker processes can start by forking (Linux): cheap, and unlike ``spawn`` it does not run
    the caller's script again in each worker (a surprise in scripts without a ``__main__`` guard)."""
    return sys.platform.startswith("linux")


def resolve_parallel(parallel: str, device: str, fast: bool, items: Sequence[Any]) -> str:
    """``auto``: processes next to a CUDA GPU, threads otherwise.

    Processes only where they can fork (Linux), with more than 2 cores, room in /dev/shm and
    every input a file (a PIL image would have to be copied to a worker). A CPU spends ~40 ms per ViT-B/32 image in the model and ~1 ms decoding it, so threads suffice
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
    return "processes" if use_processes and shared_memory_free() >= SHARED_MEMORY_NEEDED else "threads"


def shared_memory_free() -> int:
    """Free bytes in /dev/shm, where worker processes put the pixels they send back (0 if there is none)."""
    try:
        info = os.statvfs("/dev/shm")
    except OSError:
        return 0
    return info.f_bavail * info.f_frsize


def default_workers(device: str, parallel: str = "threads") -> int:
    """Decoding workers: a process per core; else up to 8 threads next to a GPU, half the cores on a CPU."""
    cores = cpu_cores()
    if parallel == "processes":
        return cores
    return max(1, min(MAX_THREADS, cores if device.split(":")[0] in ("cuda", "mps") else cores // 2))


@dataclass
class DecodeJob:
    """What a worker needs to prepare one input: shared, read-only while the workers run.

    ``recipe`` is None when the model's own processor must run (``processor``); ``cache`` is
    anything with ``in`` and ``get(digest)`` (an :class:`~course_utils.indexing.EmbeddingCache`):
    an input it already holds is reported as a hit and never decoded. An input whose content hash
    is in ``known`` (say, already in a database) is reported as known and never decoded either.
    """

    recipe: PixelRecipe | None
    processor: Any
    cache: Any
    draft: bool
    known: frozenset[str] = frozenset()

    def run(self, item: Any) -> tuple[str, Any, str | None]:
        """('hit', vector, digest) | ('known', None, digest) | ('pixels', array, digest) | ('skip', reason, None)."""
        try:
            digest = None
            if isinstance(item, Image.Image):
                image = open_image(item)  # held to the same size limits as a file
            else:
                path = Path(item)
                data, digest = read_and_hash(path)
                if digest in self.known:
                    return "known", None, digest
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


def prepare_in_threads(job: DecodeJob, items: Sequence[Any], workers: int, ahead: int) -> Iterator[Prepared]:
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


# --------------------------------------------------------------------------- on a DataLoader

#: Chunks each worker process has queued ahead (DataLoader's ``prefetch_factor``): one to work on
#: while the previous one travels back, one more to absorb jitter.
PREFETCH_CHUNKS = 2
#: Each call leaves its job (recipe, cached digests, known digests) in a file named like this,
#: followed by the caller's pid and a count: sent once per call, not with every chunk.
JOB_FILE_PREFIX = "course-decode-job-"


def job_folder() -> Path:
    """Where a call leaves its job for the worker processes: /dev/shm (memory) where there is one."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() else Path(tempfile.gettempdir())


class _Chunks:
    """The loader's dataset: the "index" of a chunk is ``(job file, [(position, input), ...])``.

    Each worker process reads a call's job from its file the first time it meets it, and keeps it.
    A chunk whose job file is gone belongs to a call that has ended: it is refused, not decoded.
    """

    def __init__(self) -> None:
        self.job_file: str | None = None
        self.job: DecodeJob | None = None

    def __getitem__(self, message: tuple[str, list[tuple[int, Any]]]) -> tuple[list, Any]:
        job_file, chunk = message
        if not os.path.exists(job_file):
            raise LookupError(f"{job_file}: this chunk's call has ended")
        if job_file != self.job_file:
            with open(job_file, "rb") as fh:
                self.job = pickle.load(fh)
            self.job_file = job_file
        return _collate([(k, *self.job.run(item)) for k, item in chunk])


class _Messages:
    """The loader's sampler: iterated in the caller's process, it yields this call's chunks.

    A DataLoader's sampler is fixed when the loader is made, so this one object is refilled by every call.
    """

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[tuple[int, Any]]]] = []

    def __iter__(self) -> Iterator[tuple[str, list[tuple[int, Any]]]]:
        return iter(self.messages)

    def __len__(self) -> int:
        return len(self.messages)


def _as_is(chunk: Any) -> Any:
    """The loader's collate: a chunk comes back from its worker already collated (:func:`_collate`)."""
    return chunk


def _open_files() -> dict[int, tuple[int, int]]:
    """This process's open file descriptors above 2, each with its (device, inode): what a fork would copy."""
    try:
        numbers = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc: keep the copies rather than fail
        return {}
    files = {}
    for fd in numbers:
        with contextlib.suppress(OSError):
            if fd > 2:
                info = os.fstat(fd)
                files[fd] = (info.st_dev, info.st_ino)
    return files


def _detach_from_parent(inherited: dict[int, tuple[int, int]], worker_id: int) -> None:
    """A worker process's first step: die with the parent, and let go of the files and pipes it had open.

    A fork copies every open file descriptor. A worker holding a copy of, say, the write end of a
    pipe another program reads would keep that program waiting for an end of file that never comes;
    each descriptor the caller had open before the workers started (``inherited``, still the same
    file) is pointed at /dev/null instead (not closed, so no number is reused). The loader's own
    queues are opened after that snapshot, so they stay.
    """
    import ctypes
    import signal

    parent = os.getppid()
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG: no orphan outlives a killed kernel
    if os.getppid() != parent:
        os._exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle: it stops the call
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd, identity in inherited.items():
        with contextlib.suppress(OSError):
            info = os.fstat(fd)
            if (info.st_dev, info.st_ino) == identity:
                os.dup2(devnull, fd)


def _remove_orphaned_job_files() -> None:
    """Delete job files left behind by a Python process that was killed in the middle of a call."""
    for path in job_folder().glob(f"{JOB_FILE_PREFIX}*"):
        pid = path.name[len(JOB_FILE_PREFIX) :].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            with contextlib.suppress(OSError):
                path.unlink()


class _PersistentLoader:
    """A ``torch.utils.data.DataLoader`` whose forked worker processes outlive the call.

    Starting a dozen processes from a Python that holds a CUDA model takes a noticeable fraction of
    a second, as long as embedding thousands of images, so the workers are started once (persistent
    workers) and every call refills the sampler. Each new ``iter()`` first lets the workers finish
    and throws away whatever an interrupted call left in flight (torch's own reset of persistent
    workers), and the results come back in order.

    No ``pin_memory``: the batch runner of :mod:`.embed` already gathers each model batch in pinned
    memory (a chunk is not a model batch), so pinning every chunk as well would only add a copy.

    The methods below are the only place that reaches into the DataLoader's private iterator
    (``_workers``, the SIGCHLD bookkeeping, ``_shutdown_workers``).
    """

    def __init__(self, workers: int):
        import functools

        from torch.utils.data import DataLoader
        from torch.utils.data._utils import signal_handling

        self.sampler = _Messages()
        self.loader = DataLoader(
            _Chunks(),
            batch_size=None,  # the sampler hands out whole chunks
            sampler=self.sampler,
            num_workers=workers,
            collate_fn=_as_is,
            persistent_workers=True,
            prefetch_factor=PREFETCH_CHUNKS,
            multiprocessing_context="fork",
            worker_init_fn=functools.partial(_detach_from_parent, _open_files()),
        )
        self.iterator = iter(self.loader)  # forks the workers now, with nothing to do yet
        # torch raises an error in the main thread, wherever it is, when a worker is killed; between
        # calls that would break unrelated code, so a dead worker is found by :meth:`alive` instead
        signal_handling._remove_worker_pids(id(self.iterator))
        self.iterator._worker_pids_set = False

    @property
    def processes(self) -> list[Any]:
        return list(self.iterator._workers)

    def __len__(self) -> int:
        return len(self.processes)

    def alive(self) -> bool:
        return all(process.is_alive() for process in self.processes)

    def run(self, messages: list[tuple[str, list[tuple[int, Any]]]]) -> Iterator[tuple[list, Any]]:
        """The chunks of ``messages``, prepared, in order."""
        self.sampler.messages = messages
        try:
            yield from iter(self.loader)
        finally:
            self.sampler.messages = []

    def close(self) -> None:
        for process in self.processes:
            process.kill()
        self.iterator._shutdown_workers()


_loader: _PersistentLoader | None = None
_loader_in_use = threading.Lock()  # one call at a time: the workers' queues carry one call's chunks


def stop_worker_processes() -> None:
    """Stop the decoding worker processes, which otherwise wait for the next call until Python ends.

    The next call that needs them starts them again.
    """
    global _loader
    if _loader is not None:
        _loader.close()
        _loader = None


def _persistent_loader(workers: int) -> _PersistentLoader:
    """This Python process's loader, started (again) when the number of workers changes or one died."""
    global _loader
    if _loader is not None and (len(_loader) != workers or not _loader.alive()):
        stop_worker_processes()
    if _loader is None:
        _remove_orphaned_job_files()
        _loader = _PersistentLoader(workers)
    return _loader


def worker_processes(workers: int) -> list[Any]:
    """The ``workers`` decoding worker processes (``multiprocessing`` processes), started if they are not running."""
    with _loader_in_use:
        return _persistent_loader(workers).processes


_calls = itertools.count()


def _write_job(job: DecodeJob) -> str:
    """Write ``job`` to a new file of :func:`job_folder` for the worker processes; its name identifies the call."""
    path = job_folder() / f"{JOB_FILE_PREFIX}{os.getpid()}-{next(_calls)}"
    with open(path, "xb") as fh:
        pickle.dump(job, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return str(path)


def prepare_in_processes(job: DecodeJob, items: Sequence[Any], workers: int, ahead: int) -> Iterator[Prepared]:
    """Like :func:`prepare_in_threads`, on worker processes of a persistent DataLoader, in order.

    The workers get the job once per call, in a file (the recipe and which digests the cache
    holds), then chunks of :data:`PROCESS_CHUNK` inputs; each chunk's pixels come back as one
    shared-memory tensor. ``ahead`` is not used: each worker has :data:`PREFETCH_CHUNKS` queued.
    """
    size = max(1, min(PROCESS_CHUNK, math.ceil(len(items) / workers)))
    worker_job = DecodeJob(
        job.recipe, None, _CachedDigests(job.cache.digests()) if job.cache else None, job.draft, job.known
    )
    with _loader_in_use:
        loader = _persistent_loader(workers)
        job_file = _write_job(worker_job)
        messages = [
            (job_file, [(k, items[k]) for k in range(start, min(start + size, len(items)))])
            for start in range(0, len(items), size)
        ]
        try:
            for rows, stacked in loader.run(messages):
                pixels = iter(stacked.numpy()) if stacked is not None else iter(())
                for k, what, payload, digest in rows:
                    yield k, items[k], what, next(pixels) if what == "pixels" else payload, digest
        except RuntimeError:
            if loader.alive():
                raise
            stop_worker_processes()
            raise CourseError(
                "An image-decoding worker process stopped (out of memory, or too little space in "
                "/dev/shm?). Try parallel='threads'."
            ) from None
        finally:
            os.unlink(job_file)


def prepare(job: DecodeJob, items: Sequence[Any], workers: int, ahead: int, parallel: str) -> Iterator[Prepared]:
    """Every input prepared by ``job``, in order, on ``workers`` threads or worker processes (``parallel``)."""
    run = prepare_in_processes if parallel == "processes" else prepare_in_threads
    return run(job, items, workers, ahead)
