"""The response cache: an answer already paid for is read from disk, not asked again.

Re-running a notebook cell should not spend a free tier's quota. Each answer from a provider is
kept in the course cache folder (``COURSE_CACHE_DIR``, under ``llm-answers/``), keyed on the
provider, the model, the system prompt, the prompt, the hashes of the image bytes and the token
limit, so a different question, picture or model is always asked for real. ``COURSE_LLM_CACHE=0``
turns the cache off. An entry that cannot be read is ignored, never fatal; entries are written
atomically, and only scrubbed answers are stored (never a key).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from .. import config
from ..errors import CourseError
from ..files import write_atomic
from .images import EncodedImage

__all__ = ["ResponseCache", "cache_key"]

CACHE_VERSION = 1
MAX_ENTRY_BYTES = 1024 * 1024  # an answer is at most 20,000 characters; anything larger is not ours


def cache_key(
    provider: str,
    model: str,
    system_prompt: str | None,
    prompt: str,
    images: Sequence[EncodedImage],
    max_tokens: int,
) -> str:
    """The hex digest that names one request's stored answer."""
    material = {
        "version": CACHE_VERSION,
        "provider": provider,
        "model": model,
        "system_prompt": system_prompt,
        "prompt": prompt,
        "images": [hashlib.sha256(image.data).hexdigest() for image in images],
        "max_tokens": max_tokens,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


class ResponseCache:
    """Answers on disk, one small JSON file per request key."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def from_settings(cls) -> ResponseCache | None:
        """The cache in the course cache folder, or None when ``COURSE_LLM_CACHE=0`` or there is no
        usable cache folder (then every call is asked: a broken cache only costs the call)."""
        if not config.llm_cache():
            return None
        try:
            return cls(config.cache_dir() / "llm-answers")
        except CourseError:
            return None

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        """The stored answer for ``key``, or None (absent, unreadable, damaged: all the same)."""
        path = self._path(key)
        try:
            if not path.is_file() or path.stat().st_size > MAX_ENTRY_BYTES:  # a FIFO or a device is never opened
                return None
            entry = json.loads(path.read_bytes())
        except (OSError, ValueError):  # ValueError: not UTF-8 or not JSON
            return None
        if not isinstance(entry, dict) or entry.get("key") != key:
            return None
        text = entry.get("text")
        return text if isinstance(text, str) and text.strip() else None

    def put(self, key: str, text: str) -> None:
        """Store ``text`` for ``key``; a cache that cannot be written only costs the call next time."""
        try:
            write_atomic(self._path(key), json.dumps({"key": key, "text": text}).encode())
        except OSError:
            pass
