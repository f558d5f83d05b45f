"""The pixel recipe: what a CLIP image processor does to an image, done faster and on uint8.

Resize the short side, centre-crop, then (on the model's device) scale and normalise. Workers run
the cheap half on decoded images; :meth:`PixelRecipe.to_pixel_values` runs the rest in torch.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["PixelRecipe", "image_processor_of"]


def _field(obj: Any, key: str) -> Any:
    """Read ``key`` from a size dict (transformers 4.x) or a ``SizeDict`` (5.x)."""
    if obj is None:
        return None
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _pil_resample(value: Any) -> int | None:
    """A PIL resampling filter from a PIL int/enum or a torchvision ``InterpolationMode``."""
    if isinstance(value, int):
        return int(value)
    name = str(getattr(value, "name", value)).upper().replace("_EXACT", "")
    member = getattr(Image.Resampling, name, None)
    return int(member) if member is not None else None


@dataclass(frozen=True)
class PixelRecipe:
    """What a CLIP image processor does, split in two: a cheap-to-parallelise half and a batched half.

    :meth:`prepare` (worker threads) resizes and centre-crops with PIL, which releases the GIL, and
    returns uint8 pixels; :meth:`to_pixel_values` (once per batch, on the model's device) rescales
    and normalises. Together they give what ``CLIPImageProcessor`` gives with its PIL backend (the
    torchvision backend resamples slightly differently). Sending uint8 to a GPU also moves 4x fewer bytes.
    """

    shortest_edge: int | None
    height_width: tuple[int, int] | None
    resample: int
    crop: tuple[int, int] | None
    scale: float | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None

    @classmethod
    def from_processor(cls, image_processor: Any) -> PixelRecipe | None:
        """The recipe of a CLIP image processor, or None for one it cannot reproduce (then the processor runs)."""
        if type(image_processor).__name__ not in (
            "CLIPImageProcessor",
            "CLIPImageProcessorPil",
            "CLIPImageProcessorFast",
        ):
            return None
        ip = image_processor
        if getattr(ip, "do_pad", False):
            return None
        shortest = hw = None
        resample = Image.Resampling.BICUBIC
        if getattr(ip, "do_resize", False):
            size = ip.size
            shortest, longest = _field(size, "shortest_edge"), _field(size, "longest_edge")
            height, width = _field(size, "height"), _field(size, "width")
            if shortest and not longest:
                shortest = int(shortest)
            elif height and width and not shortest:
                hw = (int(height), int(width))
            else:
                return None
            resample = _pil_resample(getattr(ip, "resample", None))
            if resample is None:
                return None
        crop = None
        if getattr(ip, "do_center_crop", False):
            crop = (int(_field(ip.crop_size, "height")), int(_field(ip.crop_size, "width")))
        if crop is None and hw is None:
            return None  # sizes would vary from image to image: leave it to the processor
        scale = float(ip.rescale_factor) if getattr(ip, "do_rescale", False) else None
        mean = std = None
        if getattr(ip, "do_normalize", False):
            mean, std = (np.broadcast_to(np.asarray(v, dtype=float), (3,)) for v in (ip.image_mean, ip.image_std))
            mean, std = tuple(map(float, mean)), tuple(map(float, std))
        return cls(shortest, hw, int(resample), crop, scale, mean, std)

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) after the resize, by the rule the processor uses."""
        if self.height_width:
            return self.height_width[1], self.height_width[0]
        if not self.shortest_edge:
            return width, height
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(self.shortest_edge * long / short)
        return (self.shortest_edge, new_long) if width <= height else (new_long, self.shortest_edge)

    @property
    def min_side(self) -> int | None:
        """The smallest source side that loses nothing: big JPEGs may be decoded down to it."""
        if self.height_width:
            return max(self.height_width)
        return self.shortest_edge

    def prepare(self, image: Image.Image) -> np.ndarray:
        """Resize and centre-crop an RGB image: (height, width, 3) uint8."""
        size = self.output_size(*image.size)
        if size != image.size:
            image = image.resize(size, resample=self.resample, reducing_gap=None)
        pixels = np.asarray(image, dtype=np.uint8)
        if self.crop is None:
            return pixels
        return _center_crop(pixels, *self.crop)

    def to_pixel_values(self, batch: Any) -> Any:
        """(n, h, w, 3) uint8 tensor -> (n, 3, h, w) float32 ``pixel_values``, on the batch's device."""
        import torch

        x = batch.permute(0, 3, 1, 2).to(torch.float32)
        if self.scale is not None:
            x = x * self.scale
        if self.mean is not None:
            mean, std = _mean_std(self.mean, self.std, str(x.device))
            x = (x - mean) / std
        return x.contiguous()


@functools.lru_cache(maxsize=8)
def _mean_std(mean: tuple[float, ...], std: tuple[float, ...], device: str) -> tuple[Any, Any]:
    """Normalisation constants made once per device: a fresh copy per batch would stall a GPU's queue."""
    import torch

    def shaped(values: tuple[float, ...]) -> Any:
        return torch.tensor(values, dtype=torch.float32, device=device).view(1, 3, 1, 1)

    return shaped(mean), shaped(std)


def _center_crop(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre crop, zero-padding a side that is too short, exactly as transformers does."""
    h, w = pixels.shape[:2]
    if h >= height and w >= width:
        top, left = (h - height) // 2, (w - width) // 2
        return np.ascontiguousarray(pixels[top : top + height, left : left + width])
    out = np.zeros((height, width, pixels.shape[2]), dtype=pixels.dtype)
    src_top, dst_top = ((h - height) // 2, 0) if h >= height else (0, math.ceil((height - h) / 2))
    src_left, dst_left = ((w - width) // 2, 0) if w >= width else (0, math.ceil((width - w) / 2))
    rows, cols = min(h, height), min(w, width)
    out[dst_top : dst_top + rows, dst_left : dst_left + cols] = pixels[
        src_top : src_top + rows, src_left : src_left + cols
    ]
    return out


def image_processor_of(embedder: Any) -> Any:
    """The image half of a ``CLIPProcessor`` (or the processor itself if it is one already)."""
    return getattr(embedder.processor, "image_processor", embedder.processor)
