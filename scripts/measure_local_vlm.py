"""Measure the local provider on a tiny SmolVLM-family model: image tokens, model size, time per answer.

Image tokens are counted with SmolVLM's image settings (512-pixel tiles, 64 tokens each, the
processor's default longest edge of 2048) for three images, with the processor's default resizing
and with the course's cap (:data:`course_utils.llm.local_vlm.LOCAL_MAX_SIDE`, never enlarging).
The time per answer is the tiny random model's on this machine: it says what the plumbing costs,
not what the real model takes.

Usage::

    python scripts/measure_local_vlm.py [--out docs/benchmarks/local_vlm.json] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

REAL_IMAGE_SEQ_LEN = 64  # SmolVLM-256M/500M: (512 / 16) ** 2 / 4 ** 2 tokens per tile


def image_tokens(processor, images, capped: bool) -> dict:
    from course_utils.llm.local_vlm import LOCAL_MAX_SIDE, _image_kwargs, _messages

    processor.image_seq_len = REAL_IMAGE_SEQ_LEN
    text = processor.apply_chat_template(_messages("Which products?", len(images), None), add_generation_prompt=True)
    extra = _image_kwargs(processor, images, LOCAL_MAX_SIDE) if capped else {}
    inputs = processor(text=text, images=list(images), return_tensors="pt", **extra)
    return {
        "tiles": int(inputs["pixel_values"].shape[1]),
        "image_tokens": int((inputs["input_ids"] == processor.image_token_id).sum()),
        "longest_edge": extra.get("size", {}).get("longest_edge", processor.image_processor.size.longest_edge),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "local_vlm.json")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import torch
    from make_tiny_vlm import build
    from PIL import Image
    from transformers import AutoProcessor

    from course_utils.catalog import default_catalog, render_catalog
    from course_utils.config import local_vlm_max_new_tokens
    from course_utils.llm import LocalVLM
    from course_utils.prompts import SYSTEM_PROMPT

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build(Path(tmp) / "tiny-vlm")
        size = sum(f.stat().st_size for f in model_dir.iterdir() if f.is_file())
        products = default_catalog()[:3]
        paths = render_catalog(products, Path(tmp) / "catalog")[:3]
        catalog_images = [Image.open(p).convert("RGB") for p in paths]
        photos = [img.resize((1200, 900)) for img in catalog_images]  # a phone photo's proportions

        processor = AutoProcessor.from_pretrained(model_dir)
        tokens = {
            f"{name}_{'capped' if capped else 'default'}": image_tokens(processor, images, capped)
            for name, images in (("catalog_256px", catalog_images), ("photo_1200x900", photos))
            for capped in (False, True)
        }

        llm = LocalVLM(str(model_dir), device="cpu")
        started = time.perf_counter()
        llm.generate_multimodal("What red products do you have?", paths, SYSTEM_PROMPT)
        first = time.perf_counter() - started  # includes loading the model
        runs = []
        for _ in range(args.repeats):
            llm.generate_multimodal("What red products do you have?", paths, SYSTEM_PROMPT)
            assert llm.last is not None
            runs.append(llm.last)
        params = sum(p.numel() for p in llm_model(str(model_dir)).parameters())
        llm.free()

    result = {
        "what": "local provider on the tiny random SmolVLM-family model (scripts/make_tiny_vlm.py), CPU",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
        "tiny_model": {"bytes_on_disk": size, "parameters": params},
        "answer_with_3_catalog_images": {
            "max_new_tokens": local_vlm_max_new_tokens(),
            "first_answer_s_with_loading": round(first, 3),
            "answer_s": [round(r.seconds, 3) for r in runs],
            "median_answer_s": round(statistics.median(r.seconds for r in runs), 3),
            "input_tokens_tiny": runs[0].input_tokens,
            "new_tokens": runs[0].new_tokens,
            "tiles": runs[0].image_tiles,
        },
        "image_tokens_for_3_images_at_64_per_tile": tokens,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


def llm_model(model_id: str):
    from course_utils.llm.local_vlm import load_local_vlm

    return load_local_vlm(model_id, "cpu")[0]


if __name__ == "__main__":
    sys.exit(main())
