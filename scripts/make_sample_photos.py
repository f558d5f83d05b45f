"""Draw the small "photo" folder that notebook 06 indexes when you have no photos of your own.

The pictures are generated, not photographed: simple objects on textured backgrounds with shading,
noise and a little blur, so they look more like photos than the flat catalog renders do. Each file
name says what it shows, because a folder without ``catalog.json`` uses each file's stem as the
product name.

    python scripts/make_sample_photos.py          # rewrite course_utils/samples/photos/*.jpg
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).resolve().parents[1] / "course_utils" / "samples" / "photos"
W, H = 320, 240


def _background(rng: np.random.Generator, top: tuple[int, int, int], bottom: tuple[int, int, int], grain: float):
    """A vertical gradient with horizontal grain, like a table top or a wall."""
    t = np.linspace(0, 1, H)[:, None, None]
    image = (1 - t) * np.array(top) + t * np.array(bottom)
    image = np.broadcast_to(image, (H, W, 3)).copy()
    rows = rng.normal(0, grain, size=(H, 1, 1))
    image += np.repeat(rows, W, axis=1)
    return image


def _finish(rng: np.random.Generator, image: Image.Image) -> Image.Image:
    """Sensor-like noise and a slight blur."""
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, 5, size=(H, W, 3))
    out = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return out.filter(ImageFilter.GaussianBlur(0.8))


def _shade_disc(draw_image: Image.Image, box, color, light=(0.35, 0.3)) -> None:
    """A disc with a soft highlight, so it reads as a round object."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    yy, xx = np.mgrid[0:h, 0:w]
    nx, ny = (xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2)
    inside = nx**2 + ny**2 <= 1
    dist = np.sqrt((nx + light[0]) ** 2 + (ny + light[1]) ** 2)
    shade = np.clip(1.25 - 0.55 * dist, 0.45, 1.3)[..., None]
    rgb = np.clip(np.array(color)[None, None, :] * shade, 0, 255).astype(np.uint8)
    patch = Image.fromarray(rgb)
    mask = Image.fromarray((inside * 255).astype(np.uint8))
    draw_image.paste(patch, (x0, y0), mask)


def red_apple(rng):
    image = Image.fromarray(np.clip(_background(rng, (170, 120, 80), (120, 80, 50), 6), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse([95, 185, 235, 210], fill=(90, 60, 40))  # shadow
    _shade_disc(image, (100, 70, 220, 195), (200, 30, 35))
    draw.line([(160, 75), (165, 45)], fill=(80, 50, 20), width=6)
    draw.ellipse([165, 40, 205, 62], fill=(60, 150, 50))
    return image


def yellow_banana(rng):
    image = Image.fromarray(np.clip(_background(rng, (120, 140, 170), (80, 95, 125), 3), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    outer = [(160 + 120 * math.cos(a), 30 + 150 * math.sin(a)) for a in np.linspace(0.35, 2.8, 40)]
    inner = [(160 + 95 * math.cos(a), 20 + 118 * math.sin(a)) for a in np.linspace(2.8, 0.35, 40)]
    draw.polygon(outer + inner, fill=(240, 205, 40), outline=(150, 120, 20))
    draw.ellipse([48, 95, 62, 109], fill=(90, 70, 20))
    return image


def blue_striped_towel(rng):
    image = Image.fromarray(np.clip(_background(rng, (235, 232, 225), (200, 196, 188), 2), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.rectangle([60, 50, 270, 200], fill=(40, 90, 190))
    for y in range(58, 200, 22):
        draw.rectangle([60, y, 270, y + 8], fill=(245, 245, 250))
    draw.rectangle([60, 190, 270, 200], fill=(30, 70, 150))  # the folded edge
    return image


def green_leaf(rng):
    image = Image.fromarray(np.clip(_background(rng, (245, 245, 240), (215, 215, 210), 2), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    leaf = [
        (160 + 110 * math.cos(a), 120 + 55 * math.sin(a) * abs(math.cos(a / 2)))
        for a in np.linspace(0, 2 * math.pi, 60)
    ]
    draw.polygon(leaf, fill=(50, 150, 60), outline=(30, 100, 40))
    draw.line([(50, 120), (270, 120)], fill=(140, 200, 120), width=3)
    for x in range(80, 260, 30):
        draw.line([(x, 120), (x + 25, 90)], fill=(120, 190, 110), width=2)
        draw.line([(x, 120), (x + 25, 150)], fill=(120, 190, 110), width=2)
    return image


def orange_traffic_cone(rng):
    image = Image.fromarray(np.clip(_background(rng, (110, 110, 115), (70, 70, 75), 9), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.rectangle([90, 195, 230, 212], fill=(230, 100, 20))
    draw.polygon([(160, 25), (215, 195), (105, 195)], fill=(245, 120, 25))
    for top, bottom in ((80, 100), (135, 155)):
        half_top, half_bottom = 55 * (top - 25) / 170, 55 * (bottom - 25) / 170
        draw.polygon(
            [(160 - half_top, top), (160 + half_top, top), (160 + half_bottom, bottom), (160 - half_bottom, bottom)],
            fill=(245, 245, 245),
        )
    return image


def pink_polka_dot_mug(rng):
    image = Image.fromarray(np.clip(_background(rng, (225, 215, 200), (185, 170, 150), 4), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse([205, 85, 265, 165], outline=(220, 60, 130), width=12)  # handle
    draw.rectangle([95, 60, 215, 195], fill=(230, 75, 140))
    draw.ellipse([95, 48, 215, 72], fill=(200, 55, 115))
    draw.ellipse([95, 183, 215, 207], fill=(230, 75, 140))
    for y in range(85, 185, 26):
        for x in range(112 + (y // 26 % 2) * 13, 205, 26):
            draw.ellipse([x - 6, y - 6, x + 6, y + 6], fill=(255, 240, 245))
    return image


PHOTOS = (red_apple, yellow_banana, blue_striped_towel, green_leaf, orange_traffic_cone, pink_polka_dot_mug)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for seed, draw in enumerate(PHOTOS):
        rng = np.random.default_rng(seed)
        image = _finish(rng, draw(rng))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85, optimize=True)
        (OUT / f"{draw.__name__}.jpg").write_bytes(buffer.getvalue())
        print(f"{draw.__name__}.jpg  {len(buffer.getvalue()) / 1024:.1f} KB")


if __name__ == "__main__":
    main()
