"""Every setting the course reads from the environment, read here and nowhere else.

Each variable is listed once in :data:`SETTINGS` (name, default, meaning); the README's
configuration table is checked against it by a test. Values are read at call time, so a variable
set in a notebook cell (or a ``.env`` file loaded later) takes effect on the next call.
Arguments always win over the environment, and the environment over the defaults.

Introduced in 04_multimodal_generation (`config.offline()`); the setup cell of every notebook reports what these
settings select.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import CourseError

__all__ = [
    "DEFAULT_CLIP_MODEL",
    "SETTINGS",
    "VERSION",
    "Setting",
    "cache_dir",
    "clip_model",
    "env",
    "hub_endpoint",
    "is_set",
    "llm_providers",
    "llm_timeout",
    "load_dotenv_file",
    "local_vlm_max_new_tokens",
    "local_vlm_model",
    "offline",
    "ollama_host",
    "provider_setting",
    "remember",
    "store",
]

#: The course package's version (pyproject.toml says the same; a test keeps them equal).
VERSION = "0.1.0"
DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_LLM_TIMEOUT = 60.0
DEFAULT_OLLAMA_HOST = "http://localhost:11434"
DEFAULT_LOCAL_VLM_MODEL = "HuggingFaceTB/SmolVLM-500M-Instruct"
DEFAULT_LOCAL_VLM_MAX_NEW_TOKENS = 256
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Setting:
    """One environment variable the course reads: its name, its default and what it changes."""

    name: str
    default: str
    meaning: str


SETTINGS: tuple[Setting, ...] = (
    Setting("COURSE_OFFLINE", "unset", "`1`: the bundled mini-CLIP and the offline answerer only, no network"),
    Setting("COURSE_CLIP_MODEL", DEFAULT_CLIP_MODEL, "the CLIP model: a hub name or a `save_pretrained` folder"),
    Setting(
        "COURSE_CACHE_DIR", "~/.cache/image-rag-course", "rendered catalogs, their indexes and the embedding cache"
    ),
    Setting(
        "COURSE_INDEX", "numpy", "where `search`/`ask` keep the index: `numpy`, `chroma:PATH` or `http://HOST:PORT`"
    ),
    Setting(
        "COURSE_LLM_PROVIDERS",
        "all, in cascade order",
        "which LLM providers to try, in order, e.g. `groq,gemini,offline`",
    ),
    Setting("COURSE_LLM_TIMEOUT", f"{DEFAULT_LLM_TIMEOUT:g}", "seconds one LLM request may take"),
    Setting("<PREFIX>_API_KEY", "unset", "a provider's key (`GEMINI_API_KEY`, `OPENAI_API_KEY`, …; see docs/colab.md)"),
    Setting("<PREFIX>_BASE_URL", "the provider's endpoint", "another endpoint for a provider's protocol"),
    Setting("<PREFIX>_MODEL", "per provider", "the model asked for text-only questions"),
    Setting("<PREFIX>_VISION_MODEL", "per provider", "the model asked when images are attached (empty: none)"),
    Setting("OLLAMA_HOST", DEFAULT_OLLAMA_HOST, "where a local `ollama serve` listens"),
    Setting(
        "LOCAL_VLM_MODEL",
        DEFAULT_LOCAL_VLM_MODEL,
        "the `local` provider's vision-language model: a hub name or a `save_pretrained` folder",
    ),
    Setting(
        "LOCAL_VLM_MAX_NEW_TOKENS",
        str(DEFAULT_LOCAL_VLM_MAX_NEW_TOKENS),
        "the most tokens one answer of the `local` provider may have",
    ),
    Setting("HF_ENDPOINT", "https://huggingface.co", "the Hugging Face hub probed before a model download"),
)


def env(name: str) -> str | None:
    """The variable ``name`` with surrounding spaces removed, or None when unset or empty."""
    value = os.environ.get(name, "").strip()
    return value or None


def is_set(name: str) -> bool:
    """Whether ``name`` is set at all, even to an empty value (``X_VISION_MODEL=`` means "none")."""
    return name in os.environ


def remember(name: str, value: str) -> None:
    """Set ``name`` for later calls and child processes, unless it is already set."""
    os.environ.setdefault(name, value)


def offline() -> bool:
    """``COURSE_OFFLINE``: the bundled mini-CLIP and the offline answerer only."""
    return (env("COURSE_OFFLINE") or "").lower() in _TRUE


def clip_model(model: str | os.PathLike | None = None) -> str:
    """The CLIP model to load: the argument, else ``COURSE_CLIP_MODEL``, else the hub default."""
    return str(model or env("COURSE_CLIP_MODEL") or DEFAULT_CLIP_MODEL)


def cache_dir() -> Path:
    """``COURSE_CACHE_DIR``, else ``~/.cache/image-rag-course``; a file there is an error, not a cache."""
    path = Path(env("COURSE_CACHE_DIR") or Path.home() / ".cache" / "image-rag-course").expanduser()
    if path.exists() and not path.is_dir():
        raise CourseError(f"The cache folder {path} is a file: set COURSE_CACHE_DIR to a folder.")
    return path


def store(spec: str | None = None) -> str:
    """The index store: the argument, else ``COURSE_INDEX``, else ``numpy``."""
    return ((spec if spec is not None else env("COURSE_INDEX")) or "").strip() or "numpy"


def llm_providers() -> str | None:
    """``COURSE_LLM_PROVIDERS`` as written (names are checked by the cascade), or None."""
    return env("COURSE_LLM_PROVIDERS")


def llm_timeout(timeout: float | None = None) -> float:
    """Seconds per LLM request: the argument, else ``COURSE_LLM_TIMEOUT``, else 60."""
    if timeout is None:
        raw = env("COURSE_LLM_TIMEOUT")
        if raw is None:
            return DEFAULT_LLM_TIMEOUT
        try:
            timeout = float(raw)
        except ValueError:
            raise CourseError(f"COURSE_LLM_TIMEOUT={raw!r} is not a number of seconds (e.g. 60).") from None
    if not timeout > 0:
        raise CourseError(f"The LLM timeout must be a positive number of seconds, not {timeout!r}.")
    return float(timeout)


def provider_setting(prefix: str, suffix: str) -> str | None:
    """A provider's ``<PREFIX>_<SUFFIX>`` variable, e.g. ``GROQ_BASE_URL``."""
    return env(f"{prefix}_{suffix}")


def ollama_host() -> str:
    """``OLLAMA_HOST`` as a URL (``ollama serve`` also accepts a bare ``127.0.0.1:11434``)."""
    host = env("OLLAMA_HOST") or DEFAULT_OLLAMA_HOST
    if "://" not in host:
        host = "http://" + host
    return host.rstrip("/").replace("://0.0.0.0", "://localhost")


def local_vlm_model(model: str | os.PathLike | None = None) -> str:
    """The local provider's model: the argument, else ``LOCAL_VLM_MODEL``, else SmolVLM-500M-Instruct."""
    return str(model or env("LOCAL_VLM_MODEL") or DEFAULT_LOCAL_VLM_MODEL)


def local_vlm_max_new_tokens(limit: int | None = None) -> int:
    """Tokens per local answer: the argument, else ``LOCAL_VLM_MAX_NEW_TOKENS``, else 256."""
    if limit is None:
        raw = env("LOCAL_VLM_MAX_NEW_TOKENS")
        if raw is None:
            return DEFAULT_LOCAL_VLM_MAX_NEW_TOKENS
        try:
            limit = int(raw)
        except ValueError:
            raise CourseError(f"LOCAL_VLM_MAX_NEW_TOKENS={raw!r} is not a whole number of tokens (e.g. 256).") from None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise CourseError(f"The local model's token limit must be a positive whole number, not {limit!r}.")
    return limit


def hub_endpoint() -> str:
    """``HF_ENDPOINT``, else the public Hugging Face hub."""
    return env("HF_ENDPOINT") or "https://huggingface.co"


def load_dotenv_file() -> None:
    """Load a ``.env`` file from the current directory or a parent; set variables always win."""
    from dotenv import find_dotenv, load_dotenv

    path = find_dotenv(usecwd=True)
    if path:
        load_dotenv(path, override=False)
