"""Images as an LLM API wants them: bytes, a MIME type read from the content, a bounded size.

A multimodal request carries each image inline, so the cascade turns paths, bytes and PIL images
into :class:`EncodedImage` records first: small images travel as their original bytes, large ones
are downscaled so that no side exceeds ``max_side`` pixels. Introduced in 04_multimodal_generation.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from ..errors import CourseError
from ..images import MAX_PIXELS, read_image_file, to_rgb

__all__ = ["MAX_IMAGES", "MAX_SIDE", "EncodedImage", "ImageInput", "detect_mime", "encode_image", "encode_images"]

ImageInput = str | os.PathLike | bytes | bytearray | Image.Image

#: Longest side sent to a provider; larger images are downscaled (providers resize anyway, and
#: every extra pixel costs upload time and tokens).
MAX_SIDE = 1024
#: Images per request: enough for a top-k of retrieved products, few enough for every provider.
MAX_IMAGES = 8

# Magic bytes of the formats every vision API accepts (checked on the content, not the file name).
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


@dataclass(frozen=True)
class EncodedImage:
    """One image ready to send: its bytes, MIME type and a name for messages."""

    data: bytes = field(repr=False)
    mime_type: str
    name: str
    size: tuple[int, int]

    def data_uri(self) -> str:
        """A ``data:<mime>;base64,...`` URI, as OpenAI-compatible APIs take in ``image_url``."""
        return f"data:{self.mime_type};base64,{base64.b64encode(self.data).decode('ascii')}"


def detect_mime(data: bytes) -> str | None:
    """The MIME type of PNG, JPEG, GIF or WebP ``data`` from its magic bytes, else None."""
    head = bytes(data[:16])
    for signature, mime in _SIGNATURES:
        if head.startswith(signature):
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def _read(image: Any, position: int) -> tuple[bytes | None, Image.Image | None, str]:
    """Bytes (for paths and bytes) or a PIL image, and a name to use in messages."""
    if isinstance(image, Image.Image):
        return None, image, f"image {position} (PIL image)"
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image), None, f"image {position} ({len(image)} bytes)"
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        return read_image_file(path), None, path.name  # never blocks on a FIFO, never reads /dev/zero
    raise CourseError(
        f"image {position}: a {type(image).__name__} is not an image; pass a file path, bytes or a PIL image."
    )


def _encode_pil(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        to_rgb(image).save(buffer, format="JPEG", quality=90)
    else:
        # keep transparency where there is some: PNG stores it losslessly
        keep = image if image.mode in ("RGB", "RGBA", "L", "LA") else to_rgb(image)
        keep.save(buffer, format="PNG")
    return buffer.getvalue()


def encode_image(image: ImageInput, max_side: int = MAX_SIDE, *, position: int = 1) -> EncodedImage:
    """Turn a path, bytes or PIL image into an :class:`EncodedImage`.

    PNG, JPEG, GIF and WebP files no larger than ``max_side`` are sent as their original bytes;
    larger ones are downscaled (JPEG stays JPEG, everything else becomes PNG), and other formats
    (BMP, TIFF, ...) are re-encoded as PNG. Raises :class:`CourseError` naming an unreadable image.
    """
    data, pil, name = _read(image, position)
    mime = detect_mime(data) if data is not None else None
    if data is not None:
        try:
            with Image.open(io.BytesIO(data)) as opened:
                if opened.width * opened.height > MAX_PIXELS:
                    raise CourseError(f"{name}: {opened.width}x{opened.height} pixels is too large; resize it first.")
                opened.load()  # decode now, so a truncated file fails here with its name
                if mime is not None and max(opened.size) <= max_side:
                    return EncodedImage(data, mime, name, opened.size)
                pil = ImageOps.exif_transpose(opened)
        except CourseError:
            raise
        except (Image.UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
            reason = "empty file" if not data else f"not a readable image ({exc})"
            raise CourseError(f"{name}: {reason}.") from None
    assert pil is not None
    if max(pil.size) > max_side:
        pil = pil.copy()
        pil.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    fmt = "JPEG" if mime == "image/jpeg" else "PNG"
    return EncodedImage(_encode_pil(pil, fmt), f"image/{fmt.lower()}", name, pil.size)


def encode_images(
    images: Sequence[ImageInput] | None, max_side: int = MAX_SIDE, max_images: int = MAX_IMAGES
) -> list[EncodedImage]:
    """Encode images in the order given (rank order), at most ``max_images`` of them.

    Introduced in 04_multimodal_generation.
    """
    if images is None:
        return []
    if isinstance(images, (str, bytes, bytearray, os.PathLike, Image.Image)):
        images = [images]  # one image passed on its own
    images = list(images)
    if len(images) > max_images:
        raise CourseError(
            f"{len(images)} images is more than the {max_images} one request may carry; "
            f"pass the top {max_images} (e.g. retrieve with a smaller k)."
        )
    return [encode_image(image, max_side, position=i) for i, image in enumerate(images, start=1)]
