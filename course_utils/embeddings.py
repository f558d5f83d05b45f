"""Loading CLIP and embedding images and texts into one vector space.

Introduced in 02_clip_embeddings.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from . import config
from .errors import CourseError
from .images import ImageLike, open_image

__all__ = [
    "BUNDLED_MODEL_DIR",
    "BUNDLED_MODEL_NAME",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MODEL",
    "PROGRESS_BAR_MIN",
    "CLIPEmbedder",
    "features_to_array",
    "hub_reachable",
    "l2_normalize",
    "load_clip",
    "pick_device",
]

DEFAULT_MODEL = config.DEFAULT_CLIP_MODEL
BUNDLED_MODEL_DIR = Path(__file__).with_name("models") / "mini-clip"
BUNDLED_MODEL_NAME = "mini-clip"
DEFAULT_BATCH_SIZE = {"cuda": 128, "mps": 32, "cpu": 16}
PROGRESS_BAR_MIN = 32  # more images than fit on a screen get a progress bar


def pick_device(device: str | None = None) -> str:
    """``device`` if given, else ``cuda`` or ``mps`` when available, else ``cpu``."""
    import torch

    if device:
        return _check_device(device, torch)
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _check_device(device: str, torch: Any) -> str:
    """``device`` if this machine has it, else a CourseError saying what to use."""
    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError, TypeError):
        raise CourseError(f"device={device!r} is not a device name; use 'cpu', 'cuda' or 'mps'.") from None
    if kind == "cpu":
        return device
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise CourseError(f"device={device!r} was asked for, but PyTorch sees no CUDA GPU; use 'cpu'.")
        index = torch.device(device).index
        if index is not None and index >= torch.cuda.device_count():
            raise CourseError(f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s).")
        return device
    for module in (getattr(torch.backends, kind, None), getattr(torch, kind, None)):
        available = getattr(module, "is_available", None)
        if kind != "meta" and callable(available) and available():
            return device  # mps on a Mac, xpu, ...: whatever this PyTorch can use
    raise CourseError(
        f"device={device!r} is not available on this machine; use 'cpu' (or 'cuda', 'mps' where present)."
    )


def features_to_array(output: Any) -> np.ndarray:
    """Turn what ``get_image_features``/``get_text_features`` returned into an L2-normalised array.

    transformers 4.x returns the projected embeddings as a tensor; 5.x returns a
    ``BaseModelOutputWithPooling`` whose ``pooler_output`` holds them. This is the one place that
    knows about both.
    """
    tensor = output if hasattr(output, "detach") else getattr(output, "pooler_output", None)
    if tensor is None:
        raise TypeError(f"Expected a tensor or a model output with pooler_output, got {type(output).__name__}")
    return l2_normalize(tensor.detach().float().cpu().numpy())


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Scale each row to length 1 (float32), so a dot product is a cosine similarity.

    Introduced in 02_clip_embeddings.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _model_id(source: str) -> str:
    """A stable id for what made an index: the hub name, or the folder name plus a weight hash."""
    path = Path(source)
    if not path.is_dir():
        return source
    weights = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    digest = hashlib.sha256()
    for file in weights:
        digest.update(file.read_bytes())
    name = BUNDLED_MODEL_NAME if path.resolve() == BUNDLED_MODEL_DIR.resolve() else path.name
    return f"{name}@{digest.hexdigest()[:12]}"


@dataclass
class CLIPEmbedder:
    """A CLIP model with its processor, ready to embed images and texts.

    Introduced in 02_clip_embeddings.
    """

    model: Any
    processor: Any
    model_id: str
    device: str
    source: str

    def __repr__(self) -> str:
        return f"CLIPEmbedder(model_id={self.model_id!r}, device={self.device!r})"

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)

    @property
    def max_text_tokens(self) -> int:
        return int(self.model.config.text_config.max_position_embeddings)

    def embed_texts(self, texts: str | Sequence[str]) -> np.ndarray:
        """Embed texts as rows of an (n, d) float32 array; long texts are truncated to 77 tokens."""
        import torch

        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        inputs = self.processor(
            text=texts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_text_tokens
        )
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.inference_mode():
            return features_to_array(self.model.get_text_features(**inputs))

    def embed_images(
        self,
        images: Sequence[ImageLike],
        batch_size: int | None = None,
        progress: bool | None = None,
    ) -> np.ndarray:
        """Embed images (paths or PIL images) in batches as rows of an (n, d) float32 array.

        The plain batched call: open, preprocess, forward pass, one batch after another. A file that
        is not a usable image raises :class:`CourseError` saying why. To index a folder fast, skipping
        bad files and reusing earlier embeddings, use :func:`course_utils.indexing.embed_files`.
        """
        import torch
        from tqdm.auto import tqdm

        images = list(images)
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch_size = batch_size or DEFAULT_BATCH_SIZE.get(self.device.split(":")[0], 16)
        if batch_size <= 0:
            raise CourseError(f"batch_size must be a positive number, got {batch_size}.")
        show = len(images) > PROGRESS_BAR_MIN if progress is None else progress
        rows = []
        with tqdm(total=len(images), disable=not show, desc="Embedding images", unit="img") as bar:
            for start in range(0, len(images), batch_size):
                batch = [open_image(image) for image in images[start : start + batch_size]]
                pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device)
                with torch.inference_mode():
                    rows.append(features_to_array(self.model.get_image_features(pixel_values=pixels)))
                bar.update(len(batch))
        return np.concatenate(rows)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers at all: one TCP connection, no retries.

    Checked before a download so that a firewalled laptop falls back to the bundled model in
    seconds instead of waiting through the hub client's retries.
    """
    endpoint = urlparse(config.hub_endpoint())
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def _from_pretrained(source: str, **kwargs: Any) -> tuple[Any, Any]:
    from transformers import CLIPModel, CLIPProcessor

    return CLIPModel.from_pretrained(source, **kwargs), CLIPProcessor.from_pretrained(source, **kwargs)


_CACHE: dict[tuple[str, str], CLIPEmbedder] = {}


def load_clip(model: str | os.PathLike | None = None, device: str | None = None) -> CLIPEmbedder:
    """Load a CLIP model and processor by hub name or local folder (cached per process).

    Without a model argument this uses ``COURSE_CLIP_MODEL`` or ``openai/clip-vit-base-patch32``.
    When the hub cannot be reached (or ``COURSE_OFFLINE=1``) a hub model falls back to the
    bundled mini-CLIP, loaded by the very same ``from_pretrained`` code, with one line saying so.

    Introduced in 02_clip_embeddings.
    """
    name = config.clip_model(model)
    device = pick_device(device)
    key = (name, device)
    if key in _CACHE:
        return _CACHE[key]
    source = str(Path(name).expanduser()) if name.startswith("~") else name
    if not Path(source).is_dir():
        if source.startswith((".", "/")) or Path(source).exists():
            raise CourseError(f"No CLIP model folder at {name}: give a hub name or a folder made by save_pretrained.")
        if config.offline():
            source = _fallback(name, "COURSE_OFFLINE=1")
        else:
            try:  # a cached copy needs no network
                model_obj, processor = _from_pretrained(name, local_files_only=True)
            except OSError:
                model_obj = processor = None
            if model_obj is None and hub_reachable():
                try:
                    model_obj, processor = _from_pretrained(name)
                except OSError:
                    pass
            if model_obj is None:
                source = _fallback(name, "the Hugging Face hub cannot be reached and the model is not cached")
            else:
                return _remember(key, model_obj, processor, name, device)
    try:
        model_obj, processor = _from_pretrained(source)
    except Exception as exc:  # a damaged or foreign folder fails in many ways, all of them the folder's
        reason = " ".join(str(exc).split())[:300]
        raise CourseError(f"Cannot load a CLIP model from {source}: {type(exc).__name__}: {reason}") from None
    return _remember(key, model_obj, processor, source, device)


def _fallback(name: str, why: str) -> str:
    if not (BUNDLED_MODEL_DIR / "config.json").exists():
        raise CourseError(f"Cannot load {name} ({why}) and the bundled mini-CLIP is missing from this install.")
    print(f"Using the bundled offline mini-CLIP instead of {name} ({why}).", file=sys.stderr)
    return str(BUNDLED_MODEL_DIR)


def _remember(key: tuple[str, str], model: Any, processor: Any, source: str, device: str) -> CLIPEmbedder:
    model = model.to(device).eval()
    embedder = CLIPEmbedder(model, processor, _model_id(source), device, source)
    _CACHE[key] = embedder
    return embedder
