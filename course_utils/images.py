"""Opening images safely and turning any image into RGB.

Introduced in 02_clip_embeddings.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, ImageOps

from .errors import CourseError

ImageLike = str | os.PathLike | Image.Image

#: Pillow's decompression-bomb guard, made an error: a 100-megapixel photo is already unusual.
MAX_PIXELS = 100_000_000


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any mode (palette, RGBA, LA, grayscale, CMYK, 16-bit, 1-bit) to RGB.

    Transparent pixels become white, as they look in a viewer, instead of black.
    """
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # scale high bit depths into 0..255 instead of clipping them to white
        lo, hi = image.getextrema()
        scale = 255.0 / (hi - lo) if hi > lo else 1.0
        image = image.point(lambda v: (v - lo) * scale).convert("L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def open_image(source: ImageLike) -> Image.Image:
    """Open a path (or take a PIL image), apply EXIF rotation, keep the first frame, return RGB.

    Raises :class:`CourseError` with the reason for files that are not usable images.
    """
    if isinstance(source, Image.Image):
        return to_rgb(source)
    path = Path(source)
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_PIXELS:
                raise CourseError(
                    f"{path.name}: {image.width}x{image.height} pixels is larger than the "
                    f"{MAX_PIXELS:,}-pixel limit (a decompression bomb or a huge scan); resize it first."
                )
            image.seek(0)  # animated GIF/WebP: the first frame
            image.load()
            image = ImageOps.exif_transpose(image)
            return to_rgb(image)
    except CourseError:
        raise
    except FileNotFoundError:
        raise CourseError(f"{path}: file not found.") from None
    except PermissionError:
        raise CourseError(f"{path.name}: permission denied.") from None
    except IsADirectoryError:
        raise CourseError(f"{path.name}: is a directory, not an image.") from None
    except Image.DecompressionBombError:
        raise CourseError(f"{path.name}: refused as a decompression bomb (too many pixels).") from None
    except (Image.UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        reason = "empty file" if path.exists() and path.stat().st_size == 0 else f"not a readable image ({exc})"
        raise CourseError(f"{path.name}: {reason}.") from None
