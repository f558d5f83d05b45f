"""A vision-language model running in this process: the cascade's ``local`` provider, no key needed.

Any instruction-tuned model that ``transformers`` loads with ``AutoModelForImageTextToText`` and
``AutoProcessor`` works; the default is SmolVLM-500M-Instruct (``LOCAL_VLM_MODEL`` changes it). It
receives the same prompt, system prompt and images (in rank order) as the cloud providers, written
with the processor's own chat template.

Resource sense, because a class shares free GPUs and laptops:

- the model is loaded once per process (per model and device) and reused; :func:`free_local_vlm`
  or ``with LocalVLM() as llm:`` releases it;
- fp16 on a CUDA GPU, fp32 on a CPU;
- images are never enlarged past their own size (SmolVLM's processor would otherwise upscale every
  image to 2048 pixels and cut it into 17 tiles) and capped at ``max_side``;
- generation stops at a token limit (``LOCAL_VLM_MAX_NEW_TOKENS``) and at a time limit.

Introduced in 04_multimodal_generation.
"""

from __future__ import annotations

import gc
import io
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from .. import config
from .base import LLMResponse, ProviderFailure, Usage
from .images import EncodedImage, ImageInput, encode_images
from .keys import one_line

__all__ = [
    "LOCAL_MAX_SIDE",
    "LOCAL_PROVIDER",
    "LocalAnswer",
    "LocalVLM",
    "call_local",
    "cuda_available",
    "free_local_vlm",
    "is_downloaded",
    "load_local_vlm",
    "loaded_local_vlms",
    "run_local_vlm",
]

LOCAL_PROVIDER = "local"
#: Longest image side the local model sees. SmolVLM cuts an image into 512-pixel tiles plus one
#: global view, 64 tokens each: 1024 pixels is at most 4 + 1 tiles per image.
LOCAL_MAX_SIDE = 1024
TIME_LIMIT_NOTE = " […stopped at the time limit]"

_LOADED: dict[tuple[str, str], tuple[Any, Any]] = {}  # (model id, device) -> (model, processor)


def cuda_available() -> bool:
    """Whether a CUDA GPU is present (the local model joins the default cascade only then).

    Introduced in 04_multimodal_generation.
    """
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _device(device: str | None) -> str:
    return device or ("cuda" if cuda_available() else "cpu")


def is_downloaded(model_id: str) -> bool:
    """Whether ``model_id`` is a local folder or a hub model already in the Hugging Face cache.

    Introduced in 04_multimodal_generation.
    """
    if Path(model_id).expanduser().is_dir():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model_id, "config.json"), str)
    except Exception:  # an odd name: from_pretrained says what is wrong with it
        return False


def _announce(model_id: str) -> None:
    """One line before loading a hub model, so a first download is not silence."""
    if Path(model_id).expanduser().is_dir():
        return
    where = "from the local cache" if is_downloaded(model_id) else "from the Hugging Face hub (once; cached afterwards)"
    print(f"[LLM] Loading {model_id} {where}...", file=sys.stderr, flush=True)


def load_local_vlm(model_id: str, device: str | None = None) -> tuple[Any, Any]:
    """The model and processor for ``model_id`` on ``device``, loaded on the first call only.

    Raises :class:`~course_utils.llm.base.ProviderFailure` with one line naming the model when it
    cannot be loaded (not downloaded while offline, a wrong name, not enough memory).
    """
    device = _device(device)
    key = (model_id, device)
    if key in _LOADED:
        return _LOADED[key]
    if model_id.startswith(("/", ".", "~")) and not Path(model_id).expanduser().is_dir():
        raise ProviderFailure(f"could not load {model_id!r} (no such folder)")
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    _announce(model_id)
    dtype = torch.float16 if device.startswith("cuda") else torch.float32  # a T4 has no bf16
    try:
        processor = AutoProcessor.from_pretrained(model_id)
        model = AutoModelForImageTextToText.from_pretrained(model_id, dtype=dtype).to(device).eval()
    except Exception as exc:  # OSError, ValueError, out of memory...: the cascade moves on
        message = str(exc).strip().splitlines()
        detail = one_line(message[0] if message else type(exc).__name__)[:200]
        raise ProviderFailure(f"could not load {model_id!r} ({type(exc).__name__}: {detail})") from None
    _LOADED[key] = (model, processor)
    return model, processor


def loaded_local_vlms() -> list[tuple[str, str]]:
    """The (model id, device) pairs held in memory now."""
    return list(_LOADED)


def free_local_vlm(model_id: str | None = None) -> int:
    """Release a loaded model (all of them when ``model_id`` is None) and its GPU memory.

    Returns how many were released.
    """
    keys = [key for key in _LOADED if model_id is None or key[0] == model_id]
    for key in keys:
        del _LOADED[key]
    gc.collect()
    if keys and cuda_available():
        import torch

        torch.cuda.empty_cache()
    return len(keys)


@dataclass(frozen=True)
class LocalAnswer:
    """What one local generation did: the text, tokens in and out, seconds, and why it stopped."""

    text: str
    input_tokens: int
    new_tokens: int
    seconds: float
    stopped_by: str  # "end", "token limit" or "time limit"
    image_tiles: int  # 0 without images; SmolVLM: the tiles its processor cut

    def usage(self) -> Usage:
        """The counts as every provider reports them: prompt tokens (images included) and answer tokens."""
        return Usage(prompt_tokens=self.input_tokens, output_tokens=self.new_tokens)


def _deadline_criteria(deadline: float) -> Any:
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Deadline(StoppingCriteria):
        """Stop every sequence once ``time.monotonic()`` passes the deadline."""

        hit = False

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            import torch

            over = time.monotonic() > deadline
            self.hit = self.hit or over
            return torch.full((input_ids.shape[0],), over, dtype=torch.bool, device=input_ids.device)

    criterion = Deadline()
    return criterion, StoppingCriteriaList([criterion])


def _image_kwargs(processor: Any, images: Sequence[Image.Image], max_side: int) -> dict:
    """Processor arguments that stop SmolVLM from enlarging images (it resizes to 2048 by default)."""
    image_processor = getattr(processor, "image_processor", None)
    tile = (getattr(image_processor, "max_image_size", None) or {}).get("longest_edge")
    if not images or not isinstance(tile, int) or tile <= 0:
        return {}
    largest = max(max(image.size) for image in images)
    edge = max(tile, min(max_side, tile * math.ceil(largest / tile)))
    return {"size": {"longest_edge": edge}}


def _messages(prompt: str, n_images: int, system_prompt: str | None) -> list[dict]:
    messages = []
    if system_prompt:
        messages.append({"role": "system", "content": [{"type": "text", "text": system_prompt}]})
    content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": prompt}]
    messages.append({"role": "user", "content": content})
    return messages


def run_local_vlm(
    model_id: str,
    prompt: str,
    images: Sequence[Image.Image] = (),
    system_prompt: str | None = None,
    max_new_tokens: int | None = None,
    timeout: float | None = None,
    max_side: int = LOCAL_MAX_SIDE,
    device: str | None = None,
) -> LocalAnswer:
    """One answer from the local model: chat template, images in order, token and time limits.

    Raises :class:`~course_utils.llm.base.ProviderFailure` when the model cannot be loaded or
    answers nothing.
    """
    import torch

    model, processor = load_local_vlm(model_id, device)
    limit = config.local_vlm_max_new_tokens(max_new_tokens)
    text = processor.apply_chat_template(_messages(prompt, len(images), system_prompt), add_generation_prompt=True)
    extra = _image_kwargs(processor, images, max_side)
    inputs = processor(text=text, images=list(images) or None, return_tensors="pt", **extra)
    inputs = inputs.to(model.device)
    if "pixel_values" in inputs and inputs["pixel_values"].is_floating_point():
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    n_in = int(inputs["input_ids"].shape[1])
    started = time.monotonic()
    deadline, criteria = _deadline_criteria(started + config.llm_timeout(timeout))
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=limit, do_sample=False, stopping_criteria=criteria)
    seconds = time.monotonic() - started
    new = output[0, n_in:]
    answer = processor.batch_decode(new[None], skip_special_tokens=True)[0].strip()
    stopped_by = "time limit" if deadline.hit else ("token limit" if len(new) >= limit else "end")
    if not answer:
        raise ProviderFailure(f"empty answer from {model_id!r} ({len(new)} tokens, stopped by {stopped_by})")
    if stopped_by == "time limit":
        answer += TIME_LIMIT_NOTE
    pixels = inputs.get("pixel_values")
    tiles = int(pixels.shape[0] * pixels.shape[1]) if pixels is not None and pixels.dim() == 5 else len(images)
    return LocalAnswer(answer, n_in, int(len(new)), seconds, stopped_by, tiles)


def _pil(images: Sequence[EncodedImage]) -> list[Image.Image]:
    decoded = []
    for image in images:
        with Image.open(io.BytesIO(image.data)) as opened:
            decoded.append(opened.convert("RGB"))
    return decoded


def call_local(
    model: str,
    prompt: str,
    images: Sequence[EncodedImage],
    system_prompt: str | None = None,
    max_tokens: int = 1024,
    timeout: float | None = None,
) -> tuple[str, Usage]:
    """The cascade's call: at most ``LOCAL_VLM_MAX_NEW_TOKENS`` (or ``max_tokens``, if fewer) tokens.

    Returns the answer and its token counts (the prompt's, images included, and the answer's).
    """
    limit = min(max_tokens, config.local_vlm_max_new_tokens())
    answer = run_local_vlm(model, prompt, _pil(images), system_prompt, limit, timeout)
    return answer.text, answer.usage()


class LocalVLM:
    """The local model on its own, with the interface of every LLM in the course.

    ``with LocalVLM() as llm: ...`` releases the model (and its GPU memory) at the end.
    Introduced in 04_multimodal_generation.
    """

    def __init__(
        self,
        model: str | None = None,
        device: str | None = None,
        max_new_tokens: int | None = None,
        timeout: float | None = None,
        max_side: int = LOCAL_MAX_SIDE,
    ) -> None:
        self.model = config.local_vlm_model(model)
        self.device = _device(device)
        self.max_new_tokens = config.local_vlm_max_new_tokens(max_new_tokens)
        self.timeout = timeout
        self.max_side = max_side
        self.last: LocalAnswer | None = None

    def __repr__(self) -> str:
        return f"LocalVLM(model={self.model!r}, device={self.device!r}, max_new_tokens={self.max_new_tokens})"

    def __enter__(self) -> LocalVLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.free()

    def free(self) -> None:
        """Release this model and the GPU memory it holds (it loads again on the next call)."""
        free_local_vlm(self.model)

    def generate(self, prompt: str, system_prompt: str | None = None, **kwargs: Any) -> LLMResponse:
        """Answer a text prompt."""
        return self.generate_multimodal(prompt, [], system_prompt, **kwargs)

    def generate_multimodal(
        self,
        prompt: str,
        images: Sequence[ImageInput],
        system_prompt: str | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> LLMResponse:
        """Answer a prompt about ``images`` (paths, bytes or PIL images, in rank order).

        ``last`` keeps the token counts and time of this answer.
        """
        limit = min(max_tokens or self.max_new_tokens, self.max_new_tokens)
        pil = _pil(encode_images(images, max_side=self.max_side))
        self.last = run_local_vlm(
            self.model, prompt, pil, system_prompt, limit, self.timeout, self.max_side, self.device
        )
        return LLMResponse(self.last.text, LOCAL_PROVIDER, self.model, usage=self.last.usage())
