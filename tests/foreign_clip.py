"""A CLIP the course was not written against: random weights, and sizes unlike the mini-CLIP's.

A learner on Colab meets another CLIP than the one the notebooks were written with. This model
stands in for it in the tests: it is built, saved with ``save_pretrained`` and loaded through
``COURSE_CLIP_MODEL`` exactly as a hub model would be. Its projection width, image size, patch
size and tower widths all differ from the mini-CLIP's, so nothing in a notebook may rely on
them; its weights are random, so nothing may rely on it ranking well either.

    python tests/foreign_clip.py OUT_DIR   # build one by hand, then COURSE_CLIP_MODEL=OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from course_utils.embeddings import BUNDLED_MODEL_DIR as TOKENIZER_DIR  # the real CLIP BPE files ship here

# Every size differs from mini_clip_config(): projection 64, 128 px images, 16 px patches,
# widths 96 (vision) and 64 (text), three layers per tower.
PROJECTION_DIM = 40
IMAGE_SIZE = 72
PATCH_SIZE = 12
VISION = dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=3)
TEXT = dict(hidden_size=32, intermediate_size=80, num_hidden_layers=1, num_attention_heads=2)


def build_foreign_clip(out: Path, seed: int = 1) -> Path:
    """Save a randomly initialised ``CLIPModel`` and its processor into ``out``; return ``out``.

    The tokenizer is the course's real CLIP BPE tokenizer (the files beside the mini-CLIP), so
    the model reads the same words a hub CLIP would; the image processor resizes to 72 px.
    """
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR), model_max_length=77)
    text = dict(
        TEXT,
        vocab_size=len(tokenizer),
        max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = dict(VISION, image_size=IMAGE_SIZE, patch_size=PATCH_SIZE)
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=PROJECTION_DIM)
    torch.manual_seed(seed)
    CLIPModel(config).eval().save_pretrained(out)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/foreign_clip.py OUT_DIR")
    print(build_foreign_clip(Path(sys.argv[1])))
