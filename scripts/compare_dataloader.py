#!/usr/bin/env python3
"""Does the course's DataLoader decode as fast as its hand-written pool of worker processes did?

    python scripts/compare_dataloader.py [--images 256] [--photos 24] [--repeat 3] [--out FILE.json]

Decoding alone (no model), the same job on the same files, one worker per core, each timed per
call exactly as ``embed_files`` calls it: the hand-written pool (``prepare_in_processes``: forked
once, the job sent to each worker, chunks of 32 images, pixels back through shared memory) against
the persistent ``torch.utils.data.DataLoader`` (``prepare_in_loader``: the job written to a file,
the sampler refilled, torch's reset of the persistent workers, the same chunks and shared memory).
Both are warm (workers started before the clock, as they stay between calls) and keep their best of
``--repeat`` calls, run round-robin. The issue asks for the loader unless it is more than 10% slower.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from course_utils.bench.embedding import bench_embedder, render_images  # noqa: E402
from course_utils.bench.photos import make_photos  # noqa: E402
from course_utils.indexing import PixelRecipe  # noqa: E402
from course_utils.indexing.transforms import image_processor_of  # noqa: E402
from course_utils.indexing.workers import (  # noqa: E402
    PREFETCH_CHUNKS,
    PROCESS_CHUNK,
    DecodeJob,
    cpu_cores,
    prepare_in_loader,
    prepare_in_processes,
    process_pool,
    worker_processes,
)


def one_call(prepare, job: DecodeJob, paths: list[Path], workers: int) -> float:
    """Images/s of one whole call, consumed one image at a time as the pipeline's consumer does."""
    start = time.perf_counter()
    seen = 0
    for _, _, what, pixels, _ in prepare(job, paths, workers, 64 * workers):
        assert what == "pixels" and pixels is not None
        seen += 1
    assert seen == len(paths)
    return len(paths) / (time.perf_counter() - start)


def compare(job: DecodeJob, paths: list[Path], workers: int, repeat: int) -> dict:
    process_pool(workers)  # both started before the clock, as the pipeline keeps them between calls
    worker_processes(workers)
    one_call(prepare_in_processes, job, paths[: 2 * workers], workers)  # warm-up
    one_call(prepare_in_loader, job, paths[: 2 * workers], workers)
    pool = loader = 0.0
    for _ in range(repeat):
        pool = max(pool, one_call(prepare_in_processes, job, paths, workers))
        loader = max(loader, one_call(prepare_in_loader, job, paths, workers))
    return {"n": len(paths), "pool_ips": pool, "dataloader_ips": loader, "dataloader_vs_pool": loader / pool}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="catalog-style 256 px PNGs")
    parser.add_argument("--photos", type=int, default=24, help="generated 12 MP phone photos")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--arch", default="vit-b-32", choices=("mini", "vit-b-32"))
    parser.add_argument("--out", help="write the JSON here")
    args = parser.parse_args()

    embedder = bench_embedder(args.arch, "cpu")
    processor = image_processor_of(embedder)
    # what a worker process gets in the pipeline: the recipe, no processor, no cache
    job = DecodeJob(PixelRecipe.from_processor(processor), None, None, True)
    workers = cpu_cores()
    result = {
        "cpu_cores": workers,
        "workers": workers,
        "chunk": PROCESS_CHUNK,
        "prefetch_chunks": PREFETCH_CHUNKS,
        "timed": "per call, warm workers, best of --repeat",
        "repeat": args.repeat,
        "torch": torch.__version__,
    }
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
