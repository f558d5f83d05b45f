"""Opening images safely and turning any image into RGB."""

from __future__ import annotations

import errno
import io
import os
import stat
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .errors import CourseError
from .files import NotRegularFile, open_regular

__all__ = ["MAX_PIXELS", "open_image", "read_error_reason", "region_from_border", "to_rgb", "UnusableImage"]

ImageLike = str | os.PathLike | Image.Image

#: Pillow's decompression-bomb guard, made an error: a 100-megapixel photo is already unusual.
MAX_PIXELS = 100_000_000
#: Longest side over shortest side. A model's processor scales the short side up to its input size
#: (224 px), so a 372-byte 100000x1 PNG would need 22.4 million x 224 pixels (11 GB). At 100:1 that
#: resize costs about 50 MB, what a 12-megapixel photo costs to decode; the widest real panoramas
#: are near 10:1, and of a 100:1 strip the model's centre crop sees only 1% anyway.
MAX_ASPECT_RATIO = 100

# Pillow warns above its own limit (89 million pixels) and refuses above twice that. The course
# refuses above MAX_PIXELS with a reason, so a warning below that limit would only be noise.
if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def region_from_border(mask: np.ndarray) -> np.ndarray:
    """The pixels of a boolean ``mask`` joined to the image's border through ``mask``: a flood fill.

    Grown a step at a time with NumPy, from every border pixel the mask holds. The background
    around a drawn product is this region of "looks like the background".
    """
    region = np.zeros_like(mask)
    region[0, :], region[-1, :], region[:, 0], region[:, -1] = mask[0, :], mask[-1, :], mask[:, 0], mask[:, -1]
    while True:
        grown = region.copy()
        grown[1:] |= region[:-1]
        grown[:-1] |= region[1:]
        grown[:, 1:] |= region[:, :-1]
        grown[:, :-1] |= region[:, 1:]
        grown &= mask
        if np.array_equal(grown, region):
            return region
        region = grown


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


class UnusableImage(CourseError):
    """A file that cannot be used as an image; ``reason`` says why in a few words.

    Indexing collects these as ``{"path", "reason"}`` and carries on.
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{Path(path).name}: {reason}.")


def read_error_reason(path: Path, exc: OSError) -> str:
    """Say in a few words why reading ``path`` failed (permissions, a symlink loop, a broken link...)."""
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if isinstance(exc, FileNotFoundError):
        return "broken symbolic link" if path.is_symlink() else "file not found"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not an image"
    if isinstance(exc, NotRegularFile):
        return "not a regular file"
    return f"cannot read the file ({exc.strerror or exc})"


def check_size(path: str | os.PathLike, width: int, height: int) -> None:
    """Refuse sizes that would cost far more memory than the file: too many pixels, or a thin strip.

    Raises :class:`UnusableImage` saying which limit was passed.
    """
    if width * height > MAX_PIXELS:
        raise UnusableImage(
            path,
            f"{width}x{height} pixels is over the {MAX_PIXELS:,}-pixel limit "
            "(a decompression bomb or a huge scan); resize it first",
        )
    if max(width, height) > MAX_ASPECT_RATIO * max(1, min(width, height)):
        ratio = max(width, height) / max(1, min(width, height))
        raise UnusableImage(
            path,
            f"{width}x{height} pixels is too elongated ({ratio:.0f}:1, over {MAX_ASPECT_RATIO}:1): resizing it "
            "for the model would take far more memory than the file suggests; crop it first",
        )


#: The most bytes read from one image file into memory: above any image under the pixel limit
#: in a usual format (a 100-megapixel uncompressed RGB TIFF is 300 MB).
MAX_FILE_BYTES = 512 * 2**20


def _check_regular(path: str | os.PathLike, mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise UnusableImage(path, "is a directory, not an image")
    if not stat.S_ISREG(mode):  # a FIFO would block, a device such as /dev/zero never ends
        raise UnusableImage(path, "not a regular file")


def check_image_file(path: str | os.PathLike) -> None:
    """Raise :class:`UnusableImage` unless ``path`` is a regular file, without opening it.

    Answering uses this on indexed paths: a file may have gone, or become a FIFO, since indexing.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise UnusableImage(path, read_error_reason(path, exc)) from None
    _check_regular(path, info.st_mode)


def read_image_file(path: str | os.PathLike, max_bytes: int | None = None) -> bytes:
    """The bytes of an image file, read without ever blocking.

    The file is opened with :func:`~course_utils.files.open_regular`, so a FIFO, a device
    (``/dev/zero``) or a file over ``max_bytes`` (default :data:`MAX_FILE_BYTES`) is refused with
    :class:`UnusableImage` before anything is read.
    """
    path = Path(path)
    limit = MAX_FILE_BYTES if max_bytes is None else max_bytes
    try:
        with open_regular(path) as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > limit:
                raise UnusableImage(path, f"{size / 2**20:,.0f} MB is over the {limit / 2**20:,.0f} MB limit")
            data = fh.read(limit + 1)  # a file that grows while it is read is cut off, not followed
    except OSError as exc:
        raise UnusableImage(path, read_error_reason(path, exc)) from None
    if len(data) > limit:
        raise UnusableImage(path, f"over the {limit / 2**20:,.0f} MB limit")
    return data


def open_image(source: ImageLike | bytes, min_size: int | None = None, name: str | None = None) -> Image.Image:
    """Open a path, raw file bytes or a PIL image: EXIF rotation applied, first frame, RGB.

    The size is checked (:func:`check_size`) from the header, before any decoding, so a
    decompression bomb or a thin strip costs no memory. ``min_size`` lets a large JPEG decode at
    1/2, 1/4 or 1/8 scale (DCT scaling) as long as both sides stay at least ``min_size`` pixels:
    much faster for photos that are resized to the model's input anyway.

    Raises :class:`UnusableImage` (a :class:`CourseError`) with the reason for files that are
    not usable images.
    """
    if isinstance(source, Image.Image):
        check_size(name or "image", *source.size)
        return to_rgb(source)
    if isinstance(source, bytes):
        path, fp = Path(name or "image"), io.BytesIO(source)
    else:
        path = Path(source)
        fp = path
    try:
        with Image.open(fp) as image:
            check_size(path, image.width, image.height)
            image.seek(0)  # animated GIF/WebP: the first frame
            if min_size and image.format == "JPEG":
                image.draft("RGB", (min_size, min_size))
            image.load()
            try:
                image = ImageOps.exif_transpose(image)
            except Exception:  # a damaged EXIF block should not cost the picture
                pass
            return to_rgb(image)
    except CourseError:
        raise
    except OSError as exc:
        if fp is path and not isinstance(exc, Image.UnidentifiedImageError) and exc.errno is not None:
            raise UnusableImage(path, read_error_reason(path, exc)) from None
        raise UnusableImage(path, _decode_error_reason(path, source, exc)) from None
    except Image.DecompressionBombError as exc:
        raise UnusableImage(path, f"refused as a decompression bomb ({str(exc).rstrip('.')})") from None
    except (SyntaxError, ValueError, TypeError, IndexError, KeyError, EOFError, struct.error, MemoryError) as exc:
        # Pillow's parsers raise many exception types on damaged files
        raise UnusableImage(path, f"damaged or unsupported image ({type(exc).__name__}: {exc})") from None


def _decode_error_reason(path: Path, source: object, exc: OSError) -> str:
    size = len(source) if isinstance(source, bytes) else (path.stat().st_size if path.exists() else None)
    if size == 0:
        return "empty file"
    if isinstance(exc, Image.UnidentifiedImageError):
        if path.suffix.lower() in (".heic", ".heif"):
            return "HEIC/HEIF photos need the pillow-heif package (pip install pillow-heif)"
        return "not an image (Pillow cannot identify the file format)"
    if "truncated" in str(exc).lower():
        return "truncated image (the file ends early)"
    return f"damaged image ({exc})"
