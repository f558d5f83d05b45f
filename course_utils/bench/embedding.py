"""How fast is indexing? The naive loops, the pipeline, the ceilings and the cache, side by side.

``python -m course_utils bench [--arch mini|vit-b-32] [--device D] [--n-images N] [--sizes 1000,100000] [--json]``

Every figure is measured in one run on the same generated images (PNG files drawn with the
catalog renderer), so the ratios compare like with like. The ceilings say how fast indexing
could possibly go on this machine: the model alone on ready tensors, and decoding plus
preprocessing alone, the better of threads and one worker process per core.
"""

from __future__ import annotations

import math
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..catalog import COLOR_HEX, PATTERNS, SHAPES, draw_item
from ..embeddings import (
    BUNDLED_MODEL_DIR,
    DEFAULT_BATCH_SIZE,
    CLIPEmbedder,
    features_to_array,
    load_clip,
    pick_device,
)
from ..errors import CourseError
from ..images import open_image
from ..indexing import PixelRecipe, embed_files, folder_inputs, index_files
from ..indexing.embed import resolve_precision
from ..indexing.transforms import image_processor_of
from ..indexing.workers import (
    DecodeJob,
    can_fork,
    cpu_cores,
    default_workers,
    prepare,
    resolve_parallel,
    shared_memory_free,
    worker_processes,
)
from .search import check_search_memory, median_ms, search_benchmark

__all__ = [
    "ARCHS",
    "DEFAULT_SIZES",
    "bench_embedder",
    "bench_setup",
    "embedding_methods",
    "model_only_ceiling",
    "naive_per_image",
    "naive_single_call",
    "preprocess_ceiling",
    "preprocess_setups",
    "render_images",
    "run_bench",
    "time_methods",
]

ARCHS = ("mini", "vit-b-32")
DEFAULT_SIZES = (1_000, 10_000, 100_000, 1_000_000)
QUERIES = (
    "a red circle",
    "blue striped square",
    "something green",
    "a yellow dotted item",
    "purple rectangle",
    "an orange diamond",
    "teal star",
    "pink checkered hexagon",
)


# --------------------------------------------------------------------------- set-up


def bench_embedder(arch: str = "mini", device: str | None = None, model: str | None = None) -> CLIPEmbedder:
    """The model to time: ``model`` (hub name or folder) if given, else the bundled mini-CLIP or a random ViT-B/32.

    ``vit-b-32`` is ``CLIPModel(CLIPConfig())``: the ViT-B/32 architecture with random weights
    (throughput does not depend on the weight values) and a 224 px ``CLIPImageProcessor``.
    """
    if model:
        return load_clip(model, device=device)
    if arch == "mini":
        if not (BUNDLED_MODEL_DIR / "config.json").exists():
            raise CourseError("The bundled mini-CLIP is not in this install: use --arch vit-b-32 or --model.")
        return load_clip(str(BUNDLED_MODEL_DIR), device=device)
    if arch != "vit-b-32":
        raise CourseError(f"Unknown --arch {arch!r}; use one of {', '.join(ARCHS)}.")
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    from ..mini_clip.train import TOKENIZER_DIR

    device = pick_device(device)
    tokenizer_dir = BUNDLED_MODEL_DIR if (BUNDLED_MODEL_DIR / "vocab.json").exists() else TOKENIZER_DIR
    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir), model_max_length=77)
    torch.manual_seed(0)
    net = CLIPModel(CLIPConfig()).to(device).eval()
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer)
    return CLIPEmbedder(net, processor, "vit-b-32-random@seed0", device, "random init")


def render_images(n: int, out_dir: str | os.PathLike, start: int = 0, workers: int | None = None) -> list[Path]:
    """Draw ``n`` different catalog-style images as PNG files in ``out_dir`` (item numbers make each unique)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    colors = list(COLOR_HEX.values())

    def draw(i: int) -> Path:
        path = out / f"item_{i:06d}.png"
        shape, pattern = SHAPES[i % len(SHAPES)], PATTERNS[(i // len(SHAPES)) % len(PATTERNS)]
        image = draw_item(shape, colors[(i * 7) % len(colors)], pattern, f"Item {i}", f"${5 + i % 90}.99")
        image.save(path, format="PNG", compress_level=6)
        return path

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(draw, range(start, start + n)))


class PeakMemory:
    """Peak resident memory (and CUDA memory) above the starting level while the block runs, in MB."""

    def __init__(self, device: str):
        self.device = device
        self.peak_rss_mb = 0.0
        self.peak_cuda_mb = 0.0
        self._stop = threading.Event()

    @staticmethod
    def rss() -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, AttributeError):
            return 0

    def __enter__(self) -> PeakMemory:
        self._base = self.rss()
        self._peak = self._base
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            self._cuda_base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self._peak = max(self._peak, self.rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self.rss())
        self.peak_rss_mb = (self._peak - self._base) / 2**20
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            self.peak_cuda_mb = (torch.cuda.max_memory_allocated() - self._cuda_base) / 2**20


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _timed(device: str, fn: Callable[[], Any]) -> tuple[float, Any, PeakMemory]:
    with PeakMemory(device) as memory:
        _sync(device)
        start = time.perf_counter()
        value = fn()
        _sync(device)
        seconds = time.perf_counter() - start
    return seconds, value, memory


# --------------------------------------------------------------------------- the ways to embed


def naive_per_image(embedder: CLIPEmbedder, paths: Sequence[Path]) -> np.ndarray:
    """The first loop anyone writes: one image, one processor call, one forward pass, repeat."""
    import torch

    rows = []
    for path in paths:
        pixels = embedder.processor(images=[open_image(path)], return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            rows.append(features_to_array(embedder.model.get_image_features(pixel_values=pixels.to(embedder.device))))
    return np.concatenate(rows)


def naive_single_call(embedder: CLIPEmbedder, paths: Sequence[Path]) -> np.ndarray:
    """Open everything, preprocess everything, one forward pass: fast-ish, but memory grows with the folder."""
    import torch

    pixels = embedder.processor(images=[open_image(p) for p in paths], return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        return features_to_array(embedder.model.get_image_features(pixel_values=pixels.to(embedder.device)))


def model_only_ceiling(
    embedder: CLIPEmbedder, paths: Sequence[Path], batch_sizes: Sequence[int], precision: str, min_images: int = 64
) -> dict[int, float]:
    """Images/s of forward passes alone, on pixel tensors already on the device, per batch size."""
    import torch

    from ..indexing.embed import autocast

    size = max(batch_sizes)
    pixels = embedder.processor(images=[open_image(p) for p in paths[:size]], return_tensors="pt")["pixel_values"]
    if len(pixels) < size:  # fewer images than the biggest batch: repeat them
        pixels = pixels.repeat(math.ceil(size / len(pixels)), 1, 1, 1)[:size]
    pixels = pixels.to(embedder.device)
    speeds = {}
    for batch in batch_sizes:
        x = pixels[:batch]
        passes = max(3, math.ceil(min_images / batch))
        with torch.inference_mode(), autocast(embedder.device, precision):
            embedder.model.get_image_features(pixel_values=x)  # warm-up at this shape
            _sync(embedder.device)
            start = time.perf_counter()
            for _ in range(passes):
                out = embedder.model.get_image_features(pixel_values=x)
            features_to_array(out)
            _sync(embedder.device)
        speeds[batch] = batch * passes / (time.perf_counter() - start)
    return speeds


def preprocess_setups(cores: int, fast: bool) -> list[tuple[int, str]]:
    """The decoding setups a ceiling tries: a few thread counts (beyond a few they contend for Python's
    GIL) and, where processes can fork, one worker process per core."""
    setups = [(t, "threads") for t in sorted({max(1, cores // 4), max(1, cores // 2), cores})]
    if fast and can_fork():
        setups.append((cores, "processes"))
    return setups


def embedding_methods(embedder: CLIPEmbedder, paths: Sequence[Path], pipeline_options: dict) -> dict[str, Callable]:
    """The three ways to embed a folder that the benchmarks compare, by the name of their fields."""
    return {
        "naive_per_image": lambda: naive_per_image(embedder, paths),
        "naive_single_call": lambda: naive_single_call(embedder, paths),
        "pipeline": lambda: embed_files(embedder, paths, **pipeline_options),
    }


def time_methods(
    methods: dict[str, Callable],
    device: str,
    n: int,
    result: dict[str, Any],
    outputs: dict[str, Any],
    prefix: str = "",
    log: Callable[[str], None] = lambda _: None,
) -> None:
    """Run each method once (one round), keeping in ``result`` each one's best images/s and its peak memory.

    With several rounds, each method keeps its best: the round least disturbed by whatever else the
    machine was doing. ``outputs`` gets each method's last result; ``prefix`` starts every field name.
    """
    for name, method in methods.items():
        log(name.replace("_", " "))
        seconds, outputs[name], memory = _timed(device, method)
        key = f"{prefix}{name}"
        result[f"{key}_ips"] = max(result.get(f"{key}_ips", 0.0), n / seconds)
        result[f"{key}_peak_mb"] = max(result.get(f"{key}_peak_mb", 0.0), memory.peak_rss_mb)
        if device.split(":")[0] == "cuda":
            result[f"{key}_peak_cuda_mb"] = max(result.get(f"{key}_peak_cuda_mb", 0.0), memory.peak_cuda_mb)


def preprocess_ceiling(
    embedder: CLIPEmbedder, paths: Sequence[Path], workers: int, parallel: str, draft: bool = True
) -> float:
    """Images/s of the pipeline's own decode + preprocess step alone (no model), on ``workers`` threads or processes."""
    processor = image_processor_of(embedder)
    job = DecodeJob(PixelRecipe.from_processor(processor), processor, None, draft)
    if parallel == "processes":
        worker_processes(workers)  # started before the clock: the pipeline starts them once per Python process
    start = time.perf_counter()
    for _, _, what, _, _ in prepare(job, paths, workers, 64 * workers, parallel):
        if what != "pixels":
            raise RuntimeError("a benchmark image failed to decode")
    return len(paths) / (time.perf_counter() - start)


def bench_setup(
    arch: str,
    device: str | None,
    model: str | None,
    batch_size: int | None,
    workers: int | None,
    parallel: str,
    repeat: int,
) -> tuple[CLIPEmbedder, dict[str, Any], dict[str, Any]]:
    """The model, the run's settings as the JSON reports them, and the pipeline's options, checked."""
    import torch
    import transformers

    if repeat < 1:
        raise CourseError("--repeat must be at least 1.")
    embedder = bench_embedder(arch, device, model)
    device = embedder.device
    kind = device.split(":")[0]
    batch_size = DEFAULT_BATCH_SIZE.get(kind, 16) if batch_size is None else batch_size
    if batch_size < 1:
        raise CourseError(f"batch_size must be at least 1, got {batch_size}.")
    fast = PixelRecipe.from_processor(image_processor_of(embedder)) is not None
    parallel = resolve_parallel(parallel, device, fast, [])
    workers = default_workers(device, parallel) if workers is None else workers
    if workers < 1:
        raise CourseError(f"workers must be at least 1, got {workers}.")
    result: dict[str, Any] = {
        "device": device,
        "device_name": torch.cuda.get_device_name(device) if kind == "cuda" else platform.processor() or "cpu",
        "cpu_cores": cpu_cores(),
        "torch_threads": torch.get_num_threads(),
        "arch": "model" if model else arch,
        "model_id": embedder.model_id,
        "batch_size": batch_size,
        "workers": workers,
        "parallel": parallel,
        "shared_memory_free_mb": round(shared_memory_free() / 2**20),  # auto needs room there for processes
        "precision": resolve_precision("auto", device),
        "repeat": repeat,
        "image_processor": type(image_processor_of(embedder)).__name__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }
    pipeline = {"batch_size": batch_size, "workers": workers, "parallel": parallel, "progress": False}
    return embedder, result, {"fast": fast, "pipeline": pipeline}


def run_bench(
    arch: str = "mini",
    device: str | None = None,
    n_images: int = 256,
    sizes: Sequence[int] = DEFAULT_SIZES,
    model: str | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    parallel: str = "auto",
    faiss_method: str = "auto",
    repeat: int = 1,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Measure everything and return one flat dict (what ``bench --json`` prints).

    ``repeat`` > 1 measures the embedding methods and the ceilings that many times, round-robin,
    and keeps each one's best: fairer on a machine shared with other work.
    """
    if n_images < 2:
        raise CourseError("--n-images must be at least 2.")
    embedder, result, options = bench_setup(arch, device, model, batch_size, workers, parallel, repeat)
    device, precision, batch_size = result["device"], result["precision"], result["batch_size"]
    kind, cores, fast = device.split(":")[0], result["cpu_cores"], options["fast"]
    check_search_memory(max(sizes), embedder.dim)
    result["n_images"] = n_images
    with tempfile.TemporaryDirectory(prefix="course-bench-") as tmp:
        folder = Path(tmp) / "images"
        log(f"rendering {n_images} images")
        paths = render_images(n_images, folder)

        log("model-only ceiling")
        candidates = (32, 64, 128, 256, 512) if kind == "cuda" else (1, 4, 8, 16, 32, 64)
        speeds: dict[int, float] = {}
        for _ in range(repeat):
            for batch, ips in model_only_ceiling(
                embedder, paths, candidates, precision, 2048 if kind == "cuda" else 64
            ).items():
                speeds[batch] = max(speeds.get(batch, 0.0), ips)
        best = max(speeds, key=speeds.get)
        result.update(model_only_ips=speeds[best], model_only_batch=best, model_only_by_batch=speeds)
        if precision != "fp32":
            fp32 = model_only_ceiling(embedder, paths, (best,), "fp32", 2048)
            result["model_only_fp32_ips"] = fp32[best]

        log("preprocessing ceiling")
        by_setup = {
            f"{n} {how}": max(preprocess_ceiling(embedder, paths, n, how) for _ in range(repeat))
            for n, how in preprocess_setups(cores, fast)
        }
        best_setup = max(by_setup, key=by_setup.get)
        result.update(
            preprocess_ceiling_ips=by_setup[best_setup],
            preprocess_ceiling_workers=best_setup,
            preprocess_by_workers=by_setup,
        )

        log("warming up")  # after the ceilings, which may start worker processes of another number
        pipeline_options = options["pipeline"]
        embed_files(embedder, paths[: min(len(paths), 2 * batch_size)], **pipeline_options)
        naive_per_image(embedder, paths[:2])

        # the three ways to embed, round-robin: with repeat > 1 each keeps its best round
        methods = embedding_methods(embedder, paths, pipeline_options)
        outputs: dict[str, Any] = {}
        for round_ in range(repeat):
            round_log = lambda what, r=round_: log(f"{what} (round {r + 1} of {repeat})")  # noqa: E731
            time_methods(methods, device, n_images, result, outputs, log=round_log)
        run, single = outputs["pipeline"], outputs["naive_single_call"]
        result["pipeline_preprocess"] = run.settings["preprocess"]
        result["pipeline_vs_naive_min_cosine"] = float(np.min(np.sum(run.vectors * single, axis=1)))
        del outputs, single

        log("re-indexing with the cache")
        options = {**pipeline_options, "cache": Path(tmp) / "cache"}

        def index_the_folder() -> Any:
            products, files, skipped = folder_inputs(folder)
            return index_files(products, files, embedder, skipped=skipped, **options)[1]

        first, cold, _ = _timed(device, index_the_folder)
        again, warm, _ = _timed(device, index_the_folder)
        render_images(10, folder, start=n_images)
        _, grown, _ = _timed(device, index_the_folder)
        result.update(
            first_index_s=first,
            first_index_embedded=cold.embedded,
            reindex_s=again,
            reindex_speedup=first / again,
            reindex_embedded=warm.embedded,
            reindex_from_cache=warm.cached,
            added_10_embedded=grown.embedded,
        )

    log("text embedding")
    texts = np.array(QUERIES)
    result["text_embed_ms"] = median_ms(lambda q: embedder.embed_texts([str(q)]), texts)
    search = search_benchmark(embedder.dim, sizes, faiss_method=faiss_method, log=log)
    result.update(search)
    result["query_ms"] = {n: result["text_embed_ms"] + ms for n, ms in search["search_ms"].items()}
    if "faiss_query_ms" in search:
        result["faiss_query_ms"] = {n: result["text_embed_ms"] + ms for n, ms in search["faiss_query_ms"].items()}
        result["faiss_search_ms"] = search["faiss_query_ms"]

    bound = min(result["model_only_ips"], result["preprocess_ceiling_ips"])
    result.update(
        pipeline_vs_per_image=result["pipeline_ips"] / result["naive_per_image_ips"],
        pipeline_vs_single_call=result["pipeline_ips"] / result["naive_single_call_ips"],
        pipeline_vs_model_only=result["pipeline_ips"] / result["model_only_ips"],
        pipeline_vs_bound=result["pipeline_ips"] / bound,
    )
    return result
