"""What a shopper's photo does to a product picture: crop, tilt, distance, light, compression, a room behind it.

Search by picture is measured (and its refusal threshold calibrated) on catalog images changed the
way a photo of the same product would differ from the catalog's own picture. Each perturbation is
a plain function of an image and a random generator, so every run with the same seed draws the
same pictures.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from .images import region_from_border, to_rgb

__all__ = ["PERTURBATIONS", "crop", "colour_jitter", "jpeg", "perturb", "photo_background", "rotate", "scale"]

WHITE = (255, 255, 255)


def crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Keep 70-85% of each side at a random place, as a photo framed a little too tight."""
    w, h = image.size
    keep = rng.uniform(0.70, 0.85)
    cw, ch = round(w * keep), round(h * keep)
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return image.crop((x, y, x + cw, y + ch))


def rotate(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Turn by 10-30 degrees either way, as a photo taken at a slant; the corners become white."""
    angle = rng.uniform(10, 30) * rng.choice([-1, 1])
    return image.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=WHITE)


def scale(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Shrink to 50-75% and place it somewhere on a white canvas: the product seen from further away."""
    w, h = image.size
    factor = rng.uniform(0.50, 0.75)
    small = image.resize((round(w * factor), round(h * factor)), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (w, h), WHITE)
    canvas.paste(small, (int(rng.integers(0, w - small.width + 1)), int(rng.integers(0, h - small.height + 1))))
    return canvas


def colour_jitter(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Brightness, contrast and saturation each by up to 25%, and a small hue shift: other light, another camera."""
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhancer(image).enhance(rng.uniform(0.75, 1.25))
    hsv = np.asarray(image.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(rng.integers(-6, 7))) % 256  # at most ~8 degrees of hue
    return Image.fromarray(hsv, "HSV").convert("RGB")


def jpeg(image: Image.Image, rng: np.random.Generator, quality: int = 30) -> Image.Image:
    """Save as a JPEG of quality 30 and decode it again: blocky edges, smeared colour, as messaging apps send."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def _white_around(pixels: np.ndarray, tolerance: int = 40) -> np.ndarray:
    """The near-white pixels joined to the image's border."""
    return region_from_border(np.all(pixels >= 255 - tolerance, axis=-1))


def photo_background(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Put the product on a table or a wall: a grainy gradient instead of white, a shadow, sensor noise, a little blur.

    The white around the product is found by flooding from the border, so the white stripes and
    dots inside the shape (fenced by its black outline) stay as they are.
    """
    w, h = image.size
    outside = _white_around(np.asarray(image))
    top, bottom = rng.integers(60, 220, size=3), rng.integers(40, 200, size=3)
    t = np.linspace(0, 1, h)[:, None, None]
    room = (1 - t) * top + t * bottom + rng.normal(0, 8, size=(h, 1, 1))  # gradient plus wood-like grain
    room = np.broadcast_to(room, (h, w, 3))
    shadow = Image.fromarray((~outside * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(6))
    shade = 1 - 0.35 * np.roll(np.asarray(shadow, dtype=np.float32) / 255, (6, 6), axis=(0, 1))[..., None]
    pixels = np.where(outside[..., None], room * shade, np.asarray(image, dtype=np.float32))
    pixels = pixels + rng.normal(0, 5, size=pixels.shape)
    photo = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return photo.filter(ImageFilter.GaussianBlur(0.8))


#: The perturbations an image query is measured under, by name.
PERTURBATIONS: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "crop": crop,
    "rotation": rotate,
    "scale": scale,
    "colour_jitter": colour_jitter,
    "jpeg_q30": jpeg,
    "photo_background": photo_background,
}


def perturb(image: Image.Image, name: str, rng: np.random.Generator) -> Image.Image:
    """``image`` changed by the perturbation ``name`` (a key of :data:`PERTURBATIONS`), or by all of them for ``"all"``.

    ``"all"`` is a hard case on purpose: slant, distance, crop, a room, light and JPEG at once.
    Introduced in 03_image_retrieval.
    """
    image = to_rgb(image)
    if name == "all":
        for step in ("rotation", "scale", "crop", "photo_background", "colour_jitter", "jpeg_q30"):
            image = PERTURBATIONS[step](image, rng)
        return image
    if name not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {name!r}; use one of {', '.join(PERTURBATIONS)} or 'all'")
    return PERTURBATIONS[name](image, rng)
