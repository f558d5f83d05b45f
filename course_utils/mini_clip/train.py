"""Training the mini-CLIP from scratch: a tiny ``CLIPModel`` and a multi-positive contrastive loss.

The recipe, in short: render a pool of catalog-style pictures once; every step, draw a batch of
pictures, write fresh captions for them, embed both, and pull each picture towards *every* caption
in the batch that describes it (not only its own), pushing it away from the rest.

Introduced in 07_train_your_own_clip.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CourseError
from ..files import write_atomic
from .data import MODEL_IMAGE_SIZE, ImagePool, attribute_codes, build_pool, caption_for

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_POOL_SIZE",
    "DEFAULT_STEPS",
    "TOKENIZER_DIR",
    "make_processor",
    "mini_clip_config",
    "multi_positive_loss",
    "train_mini_clip",
]

#: The real CLIP tokenizer's files (vocab.json, merges.txt) ship with the bundled model.
TOKENIZER_DIR = Path(__file__).resolve().parents[1] / "models" / "mini-clip"
#: The defaults that made the shipped weights (course_utils/models/mini-clip).
DEFAULT_STEPS = 1200
DEFAULT_BATCH_SIZE = 128
DEFAULT_POOL_SIZE = 8192
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def mini_clip_config() -> Any:
    """The tiny ``CLIPConfig``: a 3-layer ViT on 128 px images and a 3-layer text transformer.

    Most of the ~3.6 M parameters are the 49,408-token embedding table of the real CLIP
    vocabulary; the text width is kept at 64 so the saved model stays small. The vision tower is
    as small as still learned shapes reliably in our runs: it sets the time a training step takes.
    Introduced in 07_train_your_own_clip.
    """
    from transformers import CLIPConfig

    text = dict(
        vocab_size=49408,
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
    )
    vision = dict(
        image_size=MODEL_IMAGE_SIZE,
        patch_size=16,
        hidden_size=96,
        intermediate_size=384,
        num_hidden_layers=3,
        num_attention_heads=4,
    )
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=64)


def make_processor() -> Any:
    """A ``CLIPProcessor`` with the real CLIP tokenizer and a 128 px image processor.

    Introduced in 07_train_your_own_clip.
    """
    from transformers import CLIPImageProcessor, CLIPProcessor, CLIPTokenizer

    if not (TOKENIZER_DIR / "vocab.json").exists():
        raise CourseError(
            f"The CLIP tokenizer files are missing from {TOKENIZER_DIR}; "
            "rebuild them with `python scripts/build_clip_tokenizer.py`."
        )
    # 77 tokens, as every CLIP: longer texts are cut, never an error
    tokenizer = CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR), model_max_length=77)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": MODEL_IMAGE_SIZE},
        crop_size={"height": MODEL_IMAGE_SIZE, "width": MODEL_IMAGE_SIZE},
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )
    return CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def multi_positive_loss(logits: Any, positives: Any) -> Any:
    """Contrastive loss where an image may match several captions and a caption several images.

    ``logits`` is (n_images, n_captions), ``positives`` a 0/1 matrix of the same shape. Each row
    (image -> captions) and each column (caption -> images) is a softmax whose target spreads
    evenly over its positives. With one positive per row this is the standard CLIP loss; with
    attribute captions ("a red item") most batches hold many true matches that the standard loss
    would wrongly push apart. Introduced in 07_train_your_own_clip.
    """
    import torch.nn.functional as F

    image_targets = positives / positives.sum(dim=1, keepdim=True)
    text_targets = positives / positives.sum(dim=0, keepdim=True)
    loss_images = -(image_targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    loss_texts = -(text_targets * F.log_softmax(logits, dim=0)).sum(dim=0).mean()
    return (loss_images + loss_texts) / 2


def _positives(image_codes: np.ndarray, caption_codes: np.ndarray) -> np.ndarray:
    """1 where the image has every attribute the caption mentions (-1 = not mentioned)."""
    match = (caption_codes[None, :, :] == -1) | (caption_codes[None, :, :] == image_codes[:, None, :])
    return match.all(axis=2).astype(np.float32)


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    import torch

    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _learning_rate(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_mini_clip(
    out_dir: str | os.PathLike,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
    log_every: int = 20,
    batch_size: int = DEFAULT_BATCH_SIZE,
    captions_per_image: int = 2,
    pool_size: int = DEFAULT_POOL_SIZE,
    lr: float = 5e-4,
    num_threads: int | None = 1,
    on_log: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Train a mini-CLIP from scratch and save it with ``save_pretrained`` in ``out_dir``.

    Parameters
    ----------
    out_dir : folder for the model, processor files and ``training_log.json``.
    steps, batch_size : optimisation steps and pictures per step; the defaults made the shipped model.
    seed : seeds the pictures, the captions, the batch order and the weights (same seed, same model on CPU).
    device : "cpu", "cuda", ...; picked automatically when None.
    progress : show a progress bar.
    log_every : record the mean loss every this many steps (and call ``on_log``).
    captions_per_image : captions written for each picture per step (text is cheap, pictures are not).
    pool_size : pictures rendered before training; batches are drawn from this pool.
    lr : peak learning rate (AdamW, linear warm-up then cosine decay).
    num_threads : PyTorch CPU threads while training (restored afterwards); None keeps the current
        setting. One thread gives the same model on every machine, and on a shared 2-core CPU it
        ran 5x faster than two (two threads wait on each other whenever one is descheduled).
    on_log : called as ``on_log(step, loss)`` at every log point, e.g. for a live loss plot.

    Returns
    -------
    dict with ``losses`` (list of ``{"step", "loss"}``), ``elapsed_s`` (wall time), ``cpu_s``, ``out_dir`` and
    the settings; the same is written to ``out_dir/training_log.json``.

    Introduced in 07_train_your_own_clip.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import CLIPModel

    from ..embeddings import pick_device

    if steps < 1 or batch_size < 2 or captions_per_image < 1 or log_every < 1:
        raise CourseError("steps, log_every and captions_per_image must be >= 1 and batch_size >= 2.")
    if pool_size < batch_size:
        raise CourseError(f"pool_size ({pool_size}) must be at least batch_size ({batch_size}).")
    device = pick_device(device)
    out = Path(out_dir)
    with _torch_threads(num_threads):
        start, cpu_start = time.perf_counter(), time.process_time()

        torch.manual_seed(seed)
        processor = make_processor()
        model = CLIPModel(mini_clip_config()).to(device)
        model.train()
        pool: ImagePool = build_pool(pool_size, seed=seed, progress=progress)
        image_codes_all = np.stack([pool.shape, pool.color, pool.pattern], axis=1)
        mean = torch.tensor(CLIP_MEAN, device=device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=device).view(1, 3, 1, 1)

        decay = [p for p in model.parameters() if p.ndim >= 2]
        no_decay = [p for p in model.parameters() if p.ndim < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
            lr=lr,
            betas=(0.9, 0.98),
            eps=1e-6,
        )
        warmup = max(1, steps // 20)
        rng = np.random.default_rng([seed, 2])
        order = rng.permutation(len(pool))
        cursor = 0
        losses: list[dict[str, float]] = []
        window: list[float] = []
        bar = tqdm(range(steps), disable=not progress, desc="Training mini-CLIP", unit="step")
        for step in bar:
            # walk through the pool in shuffled epochs, so every picture is seen equally often
            if cursor + batch_size > len(order):
                order, cursor = rng.permutation(len(pool)), 0
            batch = order[cursor : cursor + batch_size]
            cursor += batch_size
            captions, caption_codes = [], []
            for _ in range(captions_per_image):
                for index in batch:
                    text, attrs = caption_for(rng, pool.attributes(int(index)))
                    captions.append(text)
                    caption_codes.append(attribute_codes(attrs))
            positives = torch.from_numpy(_positives(image_codes_all[batch], np.array(caption_codes))).to(device)

            pixels = torch.from_numpy(pool.pixels[batch]).to(device).permute(0, 3, 1, 2).float().div_(255)
            pixels = (pixels - mean) / std
            tokens = processor.tokenizer(captions, padding=True, return_tensors="pt").to(device)
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(step, steps, lr, warmup)
            output = model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"], pixel_values=pixels)
            loss = multi_positive_loss(output.logits_per_image, positives)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            with torch.no_grad():
                # CLIP caps the temperature at 100 so the logits cannot blow up
                model.logit_scale.clamp_(0, math.log(100))
            window.append(loss.item())
            if (step + 1) % log_every == 0 or step + 1 == steps:
                mean_loss = float(np.mean(window))
                window = []
                losses.append({"step": step + 1, "loss": round(mean_loss, 5)})
                bar.set_postfix(loss=f"{mean_loss:.3f}")
                if on_log is not None:
                    on_log(step + 1, mean_loss)
        bar.close()

        model.eval()
        out.mkdir(parents=True, exist_ok=True)
        model.to("cpu").save_pretrained(out)
        processor.save_pretrained(out)
        # transformers 4.x reads the image processor and the slow tokenizer from these files;
        # 5.x's combined processor_config.json makes 4.46 fail ("multiple values for
        # argument 'image_processor'"), and both versions load fine without it
        processor.image_processor.save_pretrained(out)
        (out / "processor_config.json").unlink(missing_ok=True)
        if out.resolve() != TOKENIZER_DIR:
            for name in ("vocab.json", "merges.txt"):
                shutil.copyfile(TOKENIZER_DIR / name, out / name)
        seconds = time.perf_counter() - start
        # CPU seconds say what the run cost even when other programs share the machine
        cpu_seconds = time.process_time() - cpu_start
        log = {
            "steps": steps,
            "seed": seed,
            "batch_size": batch_size,
            "captions_per_image": captions_per_image,
            "pool_size": pool_size,
            "lr": lr,
            "log_every": log_every,
            "device": device,
            "torch_threads": torch.get_num_threads(),
            "elapsed_s": round(seconds, 1),
            "cpu_s": round(cpu_seconds, 1),
            "final_loss": losses[-1]["loss"],
            "logit_scale": round(model.logit_scale.detach().exp().item(), 3),
            "versions": {"torch": torch.__version__, "python": platform.python_version()},
            "losses": losses,
        }
        write_atomic(out / "training_log.json", (json.dumps(log, indent=1) + "\n").encode("utf-8"))
        return {**log, "out_dir": str(out)}
