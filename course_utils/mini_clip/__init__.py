"""The bundled mini-CLIP: training data generator and trainer.

``course_utils/models/mini-clip`` holds the weights :func:`train_mini_clip` made with its defaults.
Introduced in 07_train_your_own_clip.
"""

from .data import ImagePool, build_pool, caption_for, make_caption, render_item, sample_item
from .train import mini_clip_config, multi_positive_loss, train_mini_clip

__all__ = [
    "ImagePool",
    "build_pool",
    "caption_for",
    "make_caption",
    "mini_clip_config",
    "multi_positive_loss",
    "render_item",
    "sample_item",
    "train_mini_clip",
]
