"""The embedding cache: image embeddings on disk, keyed by model, preprocessing and file content.

So re-indexing an unchanged folder embeds nothing and adding ten photos embeds ten.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import time
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .. import config
from ..files import slugify, write_atomic
from .transforms import PixelRecipe, image_processor_of

__all__ = ["MAX_CACHE_SHARDS", "EmbeddingCache", "cache_root", "preprocessing_signature"]

#: Shards beyond which the embedding cache is merged into one file when opened.
MAX_CACHE_SHARDS = 64


def cache_root() -> Path:
    """``cache_dir()/embeddings``: where :class:`EmbeddingCache` keeps its files by default."""
    return config.cache_dir() / "embeddings"


class EmbeddingCache:
    """Image embeddings on disk, keyed by model (+ preprocessing) and the image file's content hash.

    Append-only: each :meth:`put` writes one small ``.npz`` shard atomically (temp file, then
    rename), so a crash or Ctrl-C keeps every batch that finished and never leaves half a file.
    Renaming or moving a photo keeps its cache entry; editing it makes a new one.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self._vectors: dict[str, np.ndarray] = {}
        self._loaded = False

    @classmethod
    def for_embedder(cls, embedder: Any, signature: str = "", root: str | os.PathLike | None = None) -> EmbeddingCache:
        """The cache folder ``<root>/<model-id-slug>/<hash of signature>`` for this model's embeddings."""
        base = Path(root) if root is not None else cache_root()
        tag = hashlib.sha256(signature.encode()).hexdigest()[:10]
        return cls(base / slugify(embedder.model_id)[:80] / tag)

    def __len__(self) -> int:
        self.load()
        return len(self._vectors)

    def __contains__(self, digest: str) -> bool:
        self.load()
        return digest in self._vectors

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.directory)!r}, {len(self)} entries)"

    def shards(self) -> list[Path]:
        return sorted(self.directory.glob("*.npz")) if self.directory.is_dir() else []

    def load(self) -> EmbeddingCache:
        """Read every shard once; a damaged shard is ignored (its images are simply embedded again)."""
        if self._loaded:
            return self
        shards = self.shards()
        for shard in shards:
            entries = self._read_shard(shard)
            if entries is not None:
                self._vectors.update(entries)
        self._loaded = True
        if len(shards) > MAX_CACHE_SHARDS:
            self.compact(shards)
        return self

    @staticmethod
    def _read_shard(path: Path) -> dict[str, np.ndarray] | None:
        try:
            with np.load(path, allow_pickle=False) as data:
                digests, vectors = data["digests"], data["vectors"]
            if vectors.ndim != 2 or len(digests) != len(vectors):
                return None
            return {str(d): v for d, v in zip(digests, vectors.astype(np.float32), strict=True)}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None

    def get(self, digest: str) -> np.ndarray | None:
        self.load()
        return self._vectors.get(digest)

    def digests(self) -> list[str]:
        self.load()
        return list(self._vectors)

    def put(self, digests: Sequence[str], vectors: np.ndarray) -> Path | None:
        """Store one batch's embeddings as one shard, atomically. Returns the shard's path."""
        self.load()
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(digests) != len(vectors):
            raise ValueError("one digest per vector")
        if not len(digests):
            return None
        buffer = io.BytesIO()
        np.savez(buffer, digests=np.array(list(digests), dtype=str), vectors=vectors)
        path = self.directory / f"{time.time_ns():016x}-{os.getpid()}-{secrets.token_hex(4)}.npz"
        # no fsync per batch (7 ms each, a third of a GPU batch): a shard lost to a power cut is re-embedded
        write_atomic(path, buffer.getvalue(), durable=False)
        self._vectors.update(zip(digests, vectors, strict=True))
        return path

    def compact(self, shards: Iterable[Path] | None = None) -> None:
        """Merge the shards into one (written before the old ones are removed, so a crash loses nothing)."""
        shards = list(self.shards() if shards is None else shards)
        if len(shards) < 2:
            return
        digests = list(self._vectors)
        buffer = io.BytesIO()
        np.savez(buffer, digests=np.array(digests, dtype=str), vectors=np.stack([self._vectors[d] for d in digests]))
        write_atomic(self.directory / f"{time.time_ns():016x}-{os.getpid()}-merged.npz", buffer.getvalue())
        for shard in shards:
            shard.unlink(missing_ok=True)


def preprocessing_signature(embedder: Any, recipe: PixelRecipe | None, draft: bool, precision: str) -> str:
    """Everything besides the model that changes an embedding: part of the cache key."""
    if recipe is not None:
        prep: Any = asdict(recipe)
    else:
        ip = image_processor_of(embedder)
        prep = ip.to_dict() if hasattr(ip, "to_dict") else repr(ip)
    return json.dumps({"prep": prep, "draft": draft, "precision": precision}, sort_keys=True, default=str)
