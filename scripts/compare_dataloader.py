#!/usr/bin/env python3
"""Would PyTorch's DataLoader decode as fast as the course's own worker processes?

    python scripts/compare_dataloader.py [--images 256] [--photos 24] [--repeat 2] [--out FILE.json]

Decoding alone (no model), the same job on the same files, one worker per core: the hand-written
pool of ``course_utils.indexing.workers`` (forked once, chunks of 32 images, pixels back through
shared memory) against ``torch.utils.data.DataLoader`` (a map-style dataset running the same
``DecodeJob``, batches of the pool's chunk size (32, fewer for a small folder so every worker gets work), a collate that stacks the pixels and keeps skip reasons, persistent
forked workers, prefetching). Each setup warms up first (workers started) and keeps its best of
``--repeat`` rounds, run round-robin. The course keeps its pool unless the loader comes within 10%.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from course_utils.bench.embedding import bench_embedder, render_images  # noqa: E402
from course_utils.bench.photos import make_photos  # noqa: E402
from course_utils.indexing import PixelRecipe  # noqa: E402
from course_utils.indexing.transforms import image_processor_of  # noqa: E402
from course_utils.indexing.workers import PROCESS_CHUNK, DecodeJob, cpu_cores, prepare, process_pool  # noqa: E402


class DecodeDataset(Dataset):
    """The files, each prepared by the pipeline's own ``DecodeJob`` (read, hash, decode, resize)."""

    def __init__(self, job: DecodeJob, paths: list[Path]):
        self.job, self.paths = job, paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple:
        return (i, *self.job.run(self.paths[i]))


def collate(rows: list[tuple]) -> tuple[list, torch.Tensor | None]:
    """The rows without their pixels (skip reasons kept), and the pixels as one tensor (shared memory)."""
    pixels = [payload for _, what, payload, _ in rows if what == "pixels"]
    stacked = torch.from_numpy(np.stack(pixels)) if pixels else None
    return [(i, what, None if what == "pixels" else payload, digest) for i, what, payload, digest in rows], stacked


def pool_pass(job: DecodeJob, paths: list[Path], workers: int) -> float:
    start = time.perf_counter()
    for _, _, what, _, _ in prepare(job, paths, workers, 64 * workers, "processes"):
        assert what == "pixels"
    return len(paths) / (time.perf_counter() - start)


def loader_pass(loader: DataLoader, n: int) -> float:
    start = time.perf_counter()
    seen = 0
    for rows, stacked in loader:
        pixels = iter(stacked.numpy())  # handed on one image at a time, as the pipeline's consumer does
        for _, what, _, _ in rows:
            assert what == "pixels" and next(pixels) is not None
            seen += 1
    assert seen == n
    return n / (time.perf_counter() - start)


def compare(job: DecodeJob, paths: list[Path], workers: int, repeat: int) -> dict:
    process_pool(workers)  # started before the clock, as the pipeline keeps it between calls
    loader = DataLoader(
        DecodeDataset(job, paths),
        batch_size=max(1, min(PROCESS_CHUNK, math.ceil(len(paths) / workers))),  # the pool's chunk rule
        num_workers=workers,
        collate_fn=collate,
        persistent_workers=True,
        prefetch_factor=2,
        multiprocessing_context="fork",
    )
    pool_pass(job, paths[: 2 * workers], workers)  # warm-up
    loader_pass(loader, len(paths))  # warm-up: starts the persistent workers
    pool = loader_ips = 0.0
    for _ in range(repeat):
        pool = max(pool, pool_pass(job, paths, workers))
        loader_ips = max(loader_ips, loader_pass(loader, len(paths)))
    del loader
    return {"n": len(paths), "pool_ips": pool, "dataloader_ips": loader_ips, "dataloader_vs_pool": loader_ips / pool}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="catalog-style 256 px PNGs")
    parser.add_argument("--photos", type=int, default=24, help="generated 12 MP phone photos")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--arch", default="vit-b-32", choices=("mini", "vit-b-32"))
    parser.add_argument("--out", help="write the JSON here")
    args = parser.parse_args()

    embedder = bench_embedder(args.arch, "cpu")
    processor = image_processor_of(embedder)
    # what a worker process gets in the pipeline: the recipe, no processor, no cache
    job = DecodeJob(PixelRecipe.from_processor(processor), None, None, True)
    workers = cpu_cores()
    result = {"cpu_cores": workers, "workers": workers, "chunk": PROCESS_CHUNK, "torch": torch.__version__}
    with tempfile.TemporaryDirectory(prefix="course-loader-") as tmp:
        catalog = render_images(args.images, Path(tmp) / "catalog")
        photos = make_photos(args.photos, Path(tmp) / "photos")
        print(f"decoding {len(catalog)} catalog images and {len(photos)} photos on {workers} workers", file=sys.stderr)
        result["catalog"] = compare(job, catalog, workers, args.repeat)
        result["photos"] = compare(job, photos, workers, args.repeat)
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
