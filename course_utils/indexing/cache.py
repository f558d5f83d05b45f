"""The embedding cache: image embeddings on disk, keyed by model, preprocessing and file content.

So re-indexing an unchanged folder embeds nothing and adding ten photos embeds ten.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .. import config
from ..files import keyed_name, open_regular, write_atomic
from .transforms import PixelRecipe, image_processor_of

__all__ = ["MAX_CACHE_SHARDS", "QUARANTINE", "EmbeddingCache", "cache_root", "preprocessing_signature"]

#: Shards beyond which the embedding cache is merged into one file when opened.
MAX_CACHE_SHARDS = 64
#: The subfolder where shards that cannot be used are moved, to be looked at (or deleted) by hand.
QUARANTINE = "quarantine"
#: How often a reader lists the folder again when shards vanish under it (another process merged them).
_RELISTS = 8


def cache_root() -> Path:
    """``cache_dir()/embeddings``: where :class:`EmbeddingCache` keeps its files by default."""
    return config.cache_dir() / "embeddings"


class BadShard(Exception):
    """A shard that cannot be used; the message says why."""


class EmbeddingCache:
    """Image embeddings on disk, keyed by model (+ preprocessing) and the image file's content hash.

    Append-only: each :meth:`put` writes one small ``.npz`` shard atomically (temp file, then
    rename), so a crash or Ctrl-C keeps every batch that finished and never leaves half a file.
    Renaming or moving a photo keeps its cache entry; editing it makes a new one.

    Any program may write into the folder, so every shard is checked when read: a regular file
    holding one string digest per row of finite vectors of the model's size (``dim``; without
    it, the size of the first shard read). A shard that fails is moved to ``quarantine/`` and
    its images are embedded again. Several processes may share one cache: each reads what is
    there, adds shards of its own, and a merge removes only shards it has read.
    """

    def __init__(self, directory: str | os.PathLike, dim: int | None = None):
        self.directory = Path(directory)
        self.dim = dim
        self.quarantined: list[dict] = []  # {"path", "reason"} of each shard this cache set aside
        self._vectors: dict[str, np.ndarray] = {}
        self._read: set[str] = set()  # names of the shards whose entries are in _vectors
        self._loaded = False

    @classmethod
    def for_embedder(cls, embedder: Any, signature: str = "", root: str | os.PathLike | None = None) -> EmbeddingCache:
        """The cache folder ``<root>/<model-slug>-<hash>`` for this model's embeddings.

        The hash covers the whole model id and the preprocessing ``signature``; the slug is only
        there to be read. (Caches written under the earlier ``<model-slug>/<hash>`` layout are
        not read: their images are embedded once more.)
        """
        base = Path(root) if root is not None else cache_root()
        key = json.dumps({"model_id": embedder.model_id, "preprocessing": signature}, sort_keys=True)
        return cls(base / keyed_name(key, embedder.model_id), dim=embedder.dim)

    def __len__(self) -> int:
        self.load()
        return len(self._vectors)

    def __contains__(self, digest: str) -> bool:
        self.load()
        return digest in self._vectors

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.directory)!r}, {len(self)} entries)"

    def shards(self) -> list[Path]:
        """The shard files in the folder now, oldest first (names start with the time they were written)."""
        try:
            names = os.listdir(self.directory)
        except OSError:  # no cache yet (or not a folder: then nothing is cached)
            return []
        return [self.directory / name for name in sorted(names) if name.endswith(".npz") and not name.startswith(".")]

    def load(self) -> EmbeddingCache:
        """Read every shard once; merge them into one when there are more than :data:`MAX_CACHE_SHARDS`."""
        if self._loaded:
            return self
        self._read_new_shards()
        self._loaded = True
        if len(self._read) > MAX_CACHE_SHARDS:
            self.compact()
        return self

    def _read_new_shards(self) -> None:
        """Read the shards not read yet. One that vanished between the listing and the read was
        merged by another process, which wrote the merged shard first: so list the folder again."""
        for _ in range(_RELISTS):
            vanished = False
            for shard in self.shards():
                if shard.name in self._read:
                    continue
                try:
                    entries = self._read_shard(shard)
                except FileNotFoundError:
                    vanished = True
                except BadShard as exc:
                    self._quarantine(shard, str(exc))
                else:
                    self._vectors.update(entries)
                    self._read.add(shard.name)
            if not vanished:
                return

    def _read_shard(self, path: Path) -> dict[str, np.ndarray]:
        """The entries of one shard; raises :class:`BadShard` (or FileNotFoundError if it is gone)."""
        try:
            with open_regular(path, follow_symlinks=False) as fh:
                data = np.load(fh, allow_pickle=False)
                if not isinstance(data, np.lib.npyio.NpzFile):
                    raise BadShard("not an .npz archive")
                with data:
                    digests, vectors = data["digests"], data["vectors"]
        except (FileNotFoundError, BadShard):
            raise
        except Exception as exc:  # a damaged archive can fail in many ways (zip, zlib, numpy, memory)
            raise BadShard(f"unreadable ({type(exc).__name__}: {exc})") from None
        if digests.ndim != 1 or digests.dtype.kind != "U":
            raise BadShard("the digests are not a list of strings")
        if vectors.ndim != 2 or vectors.dtype.kind != "f" or len(vectors) != len(digests):
            raise BadShard("the vectors are not one row of numbers per digest")
        if self.dim is not None and vectors.shape[1] != self.dim:
            raise BadShard(f"vectors of {vectors.shape[1]} numbers, the model makes {self.dim}")
        if not np.isfinite(vectors).all():
            raise BadShard("vectors that are not finite numbers")
        self.dim = vectors.shape[1]
        return {str(d): v for d, v in zip(digests, vectors.astype(np.float32), strict=True)}

    def _quarantine(self, shard: Path, reason: str) -> None:
        """Move an unusable shard aside, so it is read (and skipped) no more."""
        self.quarantined.append({"path": str(shard), "reason": reason})
        with contextlib.suppress(OSError):  # a read-only cache: the shard is skipped on every run instead
            (self.directory / QUARANTINE).mkdir(exist_ok=True)
            os.replace(shard, self.directory / QUARANTINE / shard.name)

    def get(self, digest: str) -> np.ndarray | None:
        self.load()
        return self._vectors.get(digest)

    def digests(self) -> list[str]:
        self.load()
        return list(self._vectors)

    def put(self, digests: Sequence[str], vectors: np.ndarray) -> Path | None:
        """Store one batch's embeddings as one shard, atomically. Returns the shard's path.

        Rows that are not finite numbers (a model that overflowed) are left out.
        """
        self.load()
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(digests) != len(vectors):
            raise ValueError("one digest per vector")
        if self.dim is not None and len(vectors) and vectors.shape[1] != self.dim:
            raise ValueError(f"vectors of {vectors.shape[1]} numbers in a cache of {self.dim}")
        finite = np.isfinite(vectors).all(axis=1)
        digests, vectors = [d for d, ok in zip(digests, finite, strict=True) if ok], vectors[finite]
        if not digests:
            return None
        self.dim = vectors.shape[1]
        path = self._write_shard(digests, vectors, "")
        self._vectors.update(zip(digests, vectors, strict=True))
        self._read.add(path.name)
        return path

    def compact(self) -> None:
        """Merge the shards this cache has read into one, written before any of them is removed.

        Only shards whose entries the merged one holds are removed: another process's shard written
        since the folder was listed stays. If one of the shards read is already gone, another
        process is merging at the same time, and this one leaves it to that one.
        """
        merged = sorted(self._read)
        there = {shard.name for shard in self.shards()}
        if len(merged) < 2 or not self._vectors or not there.issuperset(merged):
            return
        digests = list(self._vectors)
        try:
            path = self._write_shard(digests, np.stack([self._vectors[d] for d in digests]), "-merged")
        except OSError:  # a read-only or full disk: the shards stay as they are
            return
        for name in merged:
            with contextlib.suppress(OSError):
                (self.directory / name).unlink(missing_ok=True)
        self._read = {path.name}

    def _write_shard(self, digests: Sequence[str], vectors: np.ndarray, suffix: str) -> Path:
        buffer = io.BytesIO()
        np.savez(buffer, digests=np.array(list(digests), dtype=str), vectors=vectors)
        path = self.directory / f"{time.time_ns():016x}-{os.getpid()}-{secrets.token_hex(4)}{suffix}.npz"
        # no fsync per shard (7 ms each, a third of a GPU batch): a shard lost to a power cut is re-embedded
        write_atomic(path, buffer.getvalue(), durable=False)
        return path


def preprocessing_signature(embedder: Any, recipe: PixelRecipe | None, draft: bool, precision: str) -> str:
    """Everything besides the model that changes an embedding: part of the cache key."""
    if recipe is not None:
        prep: Any = asdict(recipe)
    else:
        ip = image_processor_of(embedder)
        prep = ip.to_dict() if hasattr(ip, "to_dict") else repr(ip)
    return json.dumps({"prep": prep, "draft": draft, "precision": precision}, sort_keys=True, default=str)
