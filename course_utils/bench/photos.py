"""How fast is indexing a folder of phone photos? Where decoding, not the model, is the slow part.

``python -m course_utils bench --photos N [--arch vit-b-32] [--repeat R] [--out photos.json]``

A phone photo is a 12-megapixel JPEG: decoding it at full size and letting the image processor
shrink it costs several times the model's forward pass on a CPU. The pipeline decodes JPEGs at a
reduced scale (draft mode, never below the model's input size) and overlaps decoding with the
model. This benchmark generates a folder of phone-like files (4032x3024 JPEGs at quality 90, some
taken in portrait and so stored sideways with EXIF orientation 6, some PNG screenshots) and
measures, in one run on the same files: the naive per-image loop, the single call, the pipeline,
the model alone and decoding alone. Every figure is reported under a ``photos_`` name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..errors import CourseError
from ..indexing import embed_files
from .embedding import (
    bench_setup,
    embedding_methods,
    model_only_ceiling,
    naive_per_image,
    preprocess_ceiling,
    preprocess_setups,
    time_methods,
)

__all__ = ["PHOTO_SIZE", "SCREENSHOT_SIZE", "format_photo_table", "make_photos", "photo_kind", "run_photo_bench"]

#: A 12-megapixel phone photo, as the sensor stores it (landscape).
PHOTO_SIZE = (4032, 3024)
#: A phone screenshot (portrait), saved as PNG.
SCREENSHOT_SIZE = (1179, 2556)
#: EXIF tag of the orientation; 6 means "turn 90 degrees clockwise to view" (a photo taken in portrait).
ORIENTATION_TAG = 0x0112


def photo_kind(i: int) -> str:
    """What the ``i``-th generated file is: ``portrait`` (JPEG, EXIF 6), ``screenshot`` (PNG) or ``landscape``."""
    if i % 8 == 7:
        return "screenshot"
    return "portrait" if i % 4 == 1 else "landscape"


def _photo(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """Photo-like pixels: a lit gradient, soft shapes, fine texture and sensor noise, so JPEG compresses as usual."""
    width, height = size
    small = (max(8, width // 4), max(8, height // 4))
    top, bottom = rng.uniform(30, 230, 3), rng.uniform(10, 200, 3)
    ramp = np.linspace(0.0, 1.0, small[1], dtype=np.float32)[:, None, None]
    base = (top * (1 - ramp) + bottom * ramp) * np.ones((1, small[0], 1), dtype=np.float32)
    image = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(6, 14))):  # objects in the scene
        x, y = rng.uniform(0, small[0]), rng.uniform(0, small[1])
        r = rng.uniform(0.03, 0.25) * min(small)
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r * rng.uniform(0.5, 1.5), x + r, y + r), fill=color)
        else:
            points = [(x + r * np.cos(a), y + r * np.sin(a)) for a in np.sort(rng.uniform(0, 2 * np.pi, 5))]
            draw.polygon(points, fill=color)
    image = image.filter(ImageFilter.GaussianBlur(1.5)).resize(size, Image.Resampling.BICUBIC)
    # texture at a few pixels' scale, then per-pixel sensor noise: what makes a real photo weigh megabytes
    # (the noise is one tile repeated: JPEG codes 8x8 blocks, so it cannot tell, and it is cheap to make)
    texture = Image.fromarray(rng.normal(0, 10, (small[1], small[0])).astype(np.float32), mode="F")
    texture_big = np.asarray(texture.resize(size, Image.Resampling.BILINEAR)).astype(np.int16)
    tile = rng.integers(-6, 7, (256, 256, 3), dtype=np.int16)
    noise = np.tile(tile, (height // 256 + 1, width // 256 + 1, 1))[:height, :width]
    pixels = np.asarray(image, dtype=np.int16) + texture_big[..., None] + noise
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def _screenshot(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A flat app screen: bars, cards and text, the kind of file PNG compresses well."""
    width, height = size
    image = Image.new("RGB", size, tuple(int(c) for c in rng.integers(225, 256, 3)))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width, height // 12), fill=tuple(int(c) for c in rng.integers(0, 120, 3)))
    y = height // 10
    while y < height * 0.9:
        card = height // 9
        draw.rounded_rectangle((width // 20, y, width - width // 20, y + card), radius=width // 40, fill="white")
        draw.rectangle(
            (width // 12, y + card // 6, width // 4, y + card - card // 6), fill=tuple(rng.integers(0, 256, 3))
        )
        for line in range(3):
            draw.text(
                (width // 3, y + card // 5 + line * card // 4), f"Message {int(rng.integers(1000))}", fill="black"
            )
        y += card + height // 40
    return image


def make_photos(
    n: int,
    out_dir: str | os.PathLike,
    seed: int = 0,
    size: tuple[int, int] = PHOTO_SIZE,
    workers: int | None = None,
) -> list[Path]:
    """Write ``n`` phone-like image files to ``out_dir``; return their paths in order.

    File ``i`` is a :func:`photo_kind`: a ``landscape`` JPEG of ``size`` at quality 90, a
    ``portrait`` one (stored sideways, like a phone does, with EXIF orientation 6, so it is upright
    only once the orientation is applied), or a PNG ``screenshot``. Same ``seed``, same files.
    """
    if n < 1:
        raise CourseError("--photos must be at least 1.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    screen = SCREENSHOT_SIZE if size == PHOTO_SIZE else (max(8, size[1] * 2 // 5), size[0])

    def write(i: int) -> Path:
        rng = np.random.default_rng([seed, i])
        kind = photo_kind(i)
        if kind == "screenshot":
            path = out / f"screenshot_{i:04d}.png"
            _screenshot(rng, screen).save(path, format="PNG", compress_level=6)
            return path
        path = out / f"IMG_{i:04d}.jpg"
        exif = Image.Exif()
        if kind == "portrait":
            exif[ORIENTATION_TAG] = 6
        _photo(rng, size).save(path, format="JPEG", quality=90, exif=exif.tobytes())
        return path

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(write, range(n)))


def run_photo_bench(
    arch: str = "mini",
    device: str | None = None,
    n_photos: int = 64,
    model: str | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    parallel: str = "auto",
    repeat: int = 1,
    photo_size: tuple[int, int] = PHOTO_SIZE,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Measure indexing a generated photo folder; return the run's settings and its ``photos_*`` figures.

    ``repeat`` > 1 measures each method that many times, round-robin, and keeps each one's best.
    """
    if n_photos < 2:
        raise CourseError("--photos must be at least 2.")
    embedder, result, options = bench_setup(arch, device, model, batch_size, workers, parallel, repeat)
    device, precision = result["device"], result["precision"]
    result["photos_n"] = n_photos
    result["photos_size"] = list(photo_size)
    with tempfile.TemporaryDirectory(prefix="course-photos-") as tmp:
        log(f"generating {n_photos} photos of {photo_size[0]}x{photo_size[1]}")
        paths = make_photos(n_photos, Path(tmp) / "photos", size=photo_size)
        kinds = [photo_kind(i) for i in range(n_photos)]
        jpegs = [p for p, k in zip(paths, kinds, strict=True) if k != "screenshot"]
        result.update(
            photos_portrait=kinds.count("portrait"),
            photos_screenshots=kinds.count("screenshot"),
            photos_jpeg_mb_mean=float(np.mean([p.stat().st_size for p in jpegs]) / 2**20) if jpegs else 0.0,
        )

        # first pick the model's best batch size and the best decoding setup; then, in each round, time
        # the ceilings right beside the ways to embed, so a change in the machine's load hits them alike
        log("model-only ceiling: batch sizes")  # on ready tensors, so the photos' size does not matter
        candidates = (32, 64, 128, 256) if device.startswith("cuda") else (4, 8, 16, 32)
        speeds = model_only_ceiling(embedder, paths[:4], candidates, precision, 32)
        best = max(speeds, key=speeds.get)
        log("decode-only ceiling: setups")
        by_setup = {
            f"{n} {how}": preprocess_ceiling(embedder, paths, n, how)
            for n, how in preprocess_setups(result["cpu_cores"], options["fast"])
        }
        best_setup = max(by_setup, key=by_setup.get)
        count, how = int(best_setup.split()[0]), best_setup.split()[1]
        result.update(
            photos_model_only_batch=best,
            photos_model_only_by_batch=speeds,
            photos_decode_ceiling_workers=best_setup,
            photos_decode_by_workers=by_setup,
        )
        ceilings = {
            "model_only": lambda: model_only_ceiling(embedder, paths[:4], (best,), precision, 32)[best],
            "decode_ceiling": lambda: preprocess_ceiling(embedder, paths, count, how),
            # the same setup decoding every JPEG at full size: what draft mode saves
            "decode_no_draft": lambda: preprocess_ceiling(embedder, paths, count, how, draft=False),
        }

        log("warming up")
        pipeline_options = options["pipeline"]
        embed_files(embedder, paths[: min(len(paths), 2 * options["pipeline"]["batch_size"])], **pipeline_options)
        naive_per_image(embedder, paths[:1])
        methods = embedding_methods(embedder, paths, pipeline_options)
        outputs: dict[str, Any] = {}
        for round_ in range(repeat):
            round_log = lambda what, r=round_: log(f"photos: {what} (round {r + 1} of {repeat})")  # noqa: E731
            for name, ceiling in ceilings.items():
                round_log(name.replace("_", " "))
                result[f"photos_{name}_ips"] = max(result.get(f"photos_{name}_ips", 0.0), ceiling())
            time_methods(methods, device, n_photos, result, outputs, prefix="photos_", log=round_log)
        run = outputs["pipeline"]
        if run.skipped or len(run.kept) != n_photos:
            raise RuntimeError(f"a generated photo failed to embed: {run.skipped[:1]}")
        result["photos_pipeline_vs_naive_min_cosine"] = float(
            np.min(np.sum(run.vectors * outputs["naive_single_call"], axis=1))
        )
    model, decode = result["photos_model_only_ips"], result["photos_decode_ceiling_ips"]
    pipeline = result["photos_pipeline_ips"]
    # on a CPU the model and the decoders share the same cores, so each image costs both times:
    # 1 / (1/model + 1/decode) is the most any pipeline can reach there (a GPU runs the model beside them)
    shared = 1 / (1 / model + 1 / decode)
    result.update(
        photos_pipeline_vs_per_image=pipeline / result["photos_naive_per_image_ips"],
        photos_pipeline_vs_single_call=pipeline / result["photos_naive_single_call_ips"],
        photos_pipeline_vs_model_only=pipeline / model,
        photos_pipeline_vs_bound=pipeline / min(model, decode),
        photos_shared_cores_bound_ips=shared,
        photos_pipeline_vs_shared_cores_bound=pipeline / shared,
        photos_draft_speedup=result["photos_decode_ceiling_ips"] / result["photos_decode_no_draft_ips"],
    )
    return result


def format_photo_table(result: dict[str, Any]) -> str:
    """The photo figures as a plain-text table."""
    per_image = result["photos_naive_per_image_ips"]
    lines = [
        f"Photo benchmark: {result['arch']} ({result['model_id']}) on {result['device']}, {result['photos_n']} files "
        f"({result['photos_portrait']} portrait with EXIF 6, {result['photos_screenshots']} PNG screenshots, "
        f"JPEGs {result['photos_jpeg_mb_mean']:.1f} MB on average), batch {result['batch_size']}, "
        f"{result['workers']} {result['parallel']}",
        "",
        f"{'indexing photos':<38} {'images/s':>10} {'vs per-image':>13} {'peak RAM MB':>12}",
    ]
    rows = [
        ("naive per-image loop", per_image, result["photos_naive_per_image_peak_mb"]),
        (
            "naive single call (whole list)",
            result["photos_naive_single_call_ips"],
            result["photos_naive_single_call_peak_mb"],
        ),
        ("pipeline", result["photos_pipeline_ips"], result["photos_pipeline_peak_mb"]),
        (f"model-only ceiling (batch {result['photos_model_only_batch']})", result["photos_model_only_ips"], None),
        (f"decode-only ceiling ({result['photos_decode_ceiling_workers']})", result["photos_decode_ceiling_ips"], None),
        ("  the same without draft mode", result["photos_decode_no_draft_ips"], None),
    ]
    for name, ips, mb in rows:
        memory = f"{mb:>12.0f}" if mb is not None else f"{'':>12}"
        lines.append(f"{name:<38} {ips:>10.1f} {ips / per_image:>12.1f}x {memory}")
    lines += [
        "",
        f"pipeline: {result['photos_pipeline_vs_per_image']:.1f}x the per-image loop, "
        f"{result['photos_pipeline_vs_bound']:.0%} of the lower ceiling, "
        f"{result['photos_pipeline_vs_shared_cores_bound']:.0%} of both on shared cores; draft mode decodes "
        f"{result['photos_draft_speedup']:.1f}x faster; same vectors as the naive path "
        f"(min cosine {result['photos_pipeline_vs_naive_min_cosine']:.4f})",
    ]
    return "\n".join(lines)
