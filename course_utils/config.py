"""Every setting the course reads from the environment, read here and nowhere else.

Each variable is listed once in :data:`SETTINGS` (name, default, meaning); the README's
configuration table is checked against it by a test. Values are read at call time, so a variable
set in a notebook cell (or a ``.env`` file loaded later) takes effect on the next call.
Arguments always win over the environment, and the environment over the defaults.

Introduced in 04_multimodal_generation (`config.offline()`); the setup cell of every notebook reports what these
settings select.
"""

from __future__ import annotations

import io
import math
import os
import re
import sys
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
    "dotenv_path",
    "from_dotenv",
    "llm_cache",
    "llm_max_wait",
    "llm_providers",
    "llm_timeout",
    "load_dotenv_file",
    "local_vlm_max_new_tokens",
    "local_vlm_model",
    "offline",
    "ollama_host",
    "shown",
    "provider_rpm",
    "provider_setting",
    "remember",
    "store",
]

#: The course package's version (pyproject.toml says the same; a test keeps them equal).
VERSION = "0.1.0"
DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_LLM_TIMEOUT = 60.0
DEFAULT_LLM_MAX_WAIT = 60.0
DEFAULT_OLLAMA_HOST = "http://localhost:11434"
DEFAULT_LOCAL_VLM_MODEL = "HuggingFaceTB/SmolVLM-500M-Instruct"
DEFAULT_LOCAL_VLM_MAX_NEW_TOKENS = 256
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


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
    Setting("COURSE_LLM_TIMEOUT", f"{DEFAULT_LLM_TIMEOUT:g}", "seconds one LLM request may take, from start to end"),
    Setting(
        "COURSE_LLM_MAX_WAIT",
        f"{DEFAULT_LLM_MAX_WAIT:g}",
        "seconds a call with no other provider to try may wait in all for a rate-limited one (429/503); `0`: never",
    ),
    Setting("COURSE_LLM_CACHE", "1", "`0`: ask the provider every time instead of reusing a stored answer"),
    Setting("<PREFIX>_API_KEY", "unset", "a provider's key (`GEMINI_API_KEY`, `OPENAI_API_KEY`, …; see docs/colab.md)"),
    Setting("<PREFIX>_BASE_URL", "the provider's endpoint", "another endpoint for a provider's protocol"),
    Setting("<PREFIX>_MODEL", "per provider", "the model asked for text-only questions"),
    Setting("<PREFIX>_VISION_MODEL", "per provider", "the model asked when images are attached (empty: none)"),
    Setting("<PREFIX>_RPM", "unset", "at most this many requests a minute to that provider: its calls are spaced"),
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


def _number(name: str, what: str, example: str) -> float | None:
    """The variable ``name`` as a finite number, None when unset; a :class:`CourseError` otherwise."""
    raw = env(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise CourseError(f"{name}={shown(name, raw)!r} is not {what} (e.g. {example}).")
    return value


def llm_timeout(timeout: float | None = None) -> float:
    """Seconds per LLM request: the argument, else ``COURSE_LLM_TIMEOUT``, else 60."""
    if timeout is None:
        timeout = _number("COURSE_LLM_TIMEOUT", "a number of seconds", "60")
        if timeout is None:
            return DEFAULT_LLM_TIMEOUT
    if not timeout > 0:
        raise CourseError(f"The LLM timeout must be a positive number of seconds, not {timeout!r}.")
    return float(timeout)


def llm_max_wait() -> float:
    """``COURSE_LLM_MAX_WAIT``: seconds a call with no other provider to try may wait in all (429/503)."""
    seconds = _number("COURSE_LLM_MAX_WAIT", "a number of seconds", "60")
    if seconds is None:
        return DEFAULT_LLM_MAX_WAIT
    if seconds < 0:
        raise CourseError(f"COURSE_LLM_MAX_WAIT must be 0 or more seconds, not {seconds:g}.")
    return seconds


def llm_cache() -> bool:
    """``COURSE_LLM_CACHE``: whether answers are stored and reused (on unless ``0``)."""
    return (env("COURSE_LLM_CACHE") or "1").lower() not in _FALSE


def provider_rpm(prefix: str) -> float | None:
    """``<PREFIX>_RPM``: the most requests a minute to send to that provider, or None (no pacing)."""
    if not prefix:
        return None
    rpm = _number(f"{prefix}_RPM", "a number of requests a minute", "10")
    if rpm is not None and rpm <= 0:
        raise CourseError(f"{prefix}_RPM must be a positive number of requests a minute, not {rpm:g}.")
    return rpm


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


# -- the .env file ---------------------------------------------------------------------------------
#
# A .env holds the LLM settings: keys, provider endpoints and models, the cascade's settings. It
# is read as plain text (no ${VAR} expansion, which also made large files load in quadratic time),
# and a value read from it is shown only when it is a model or provider name of the expected shape.

DOTENV_MAX_BYTES = 64 * 1024  # hundreds of keys; a larger file is something else
_KEY = re.compile(r"[A-Z][A-Z0-9_]*_API_KEY|HF_TOKEN")
_MODEL_SETTING = re.compile(r"[A-Z][A-Z0-9_]*_(?:VISION_)?MODEL")
_ENDPOINT_SETTING = re.compile(r"([A-Z][A-Z0-9_]*)_BASE_URL")
_RPM_SETTING = re.compile(r"[A-Z][A-Z0-9_]*_RPM")
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}")
_PROVIDER_NAME = re.compile(r"[A-Za-z][A-Za-z ()-]{0,29}")
_dotenv_seen: dict[Path, tuple[int, int]] = {}  # the file states already read (and reported)
_dotenv_values: dict[str, str] = {}  # what a .env set, so a changed .env can update it


def dotenv_path() -> Path | None:
    """The ``.env`` the course reads: in the working folder, or in a folder above it up to the root
    of the git repository that holds the working folder (notebooks run in ``notebooks/``); never
    beyond."""
    try:
        here = Path.cwd()
    except OSError:  # the working folder was deleted
        return None
    folders = (here, *here.parents)
    root = next((folder for folder in folders if (folder / ".git").exists()), None)
    for folder in folders:
        if (folder / ".env").is_file():
            return folder / ".env"
        if root is None or folder == root:
            return None
    return None


def from_dotenv(name: str) -> bool:
    """Whether the variable ``name`` holds the value a ``.env`` file gave it."""
    return name in _dotenv_values and os.environ.get(name) == _dotenv_values[name]


def shown(name: str, value: str) -> str:
    """``value`` for a message, unless it came from a ``.env`` file (then only where it was set)."""
    return f"<{name} from .env>" if from_dotenv(name) else value


def _dotenv_refusal(name: str, value: str, file_values: dict[str, str]) -> str | None:
    """Why the ``.env`` line ``name=value`` is not used, "" to ignore it silently, or None to use it."""
    keys = [v for k, v in file_values.items() if _KEY.fullmatch(k)]
    keys += [v for k, v in os.environ.items() if _KEY.fullmatch(k)]
    holds_key = any(len(key) >= 8 and key in value for key in keys)
    if _KEY.fullmatch(name):
        return None
    if name == "COURSE_LLM_PROVIDERS":
        names = [item.strip() for item in value.split(",")]
        if holds_key or not all(_PROVIDER_NAME.fullmatch(item) for item in names if item):
            return "not a list of provider names (e.g. gemini,groq,offline)"
        return None
    if name in ("COURSE_LLM_TIMEOUT", "COURSE_LLM_MAX_WAIT") or _RPM_SETTING.fullmatch(name):
        try:
            ok = math.isfinite(float(value)) and float(value) >= 0
        except ValueError:
            ok = False
        return None if ok else "not a number"
    if name == "COURSE_LLM_CACHE":
        return None if value.lower() in (*_TRUE, *_FALSE) else "not 0 or 1"
    if name.startswith("COURSE_"):
        return "a .env holds the LLM settings only; set this one in the environment"
    if _MODEL_SETTING.fullmatch(name):
        if holds_key or (value and not _MODEL_NAME.fullmatch(value)):
            return "not a model name (letters, digits and . _ : / @ + - only)"
        return None
    endpoint = _ENDPOINT_SETTING.fullmatch(name)
    if endpoint:
        prefix = endpoint.group(1)
        if f"{prefix}_API_KEY" in file_values or f"{prefix}_TOKEN" in file_values:
            return None
        return f"a .env may change a provider's endpoint only together with its key ({prefix}_API_KEY)"
    return None if name == "OLLAMA_HOST" else ""


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def load_dotenv_file() -> None:
    """Load the LLM settings of the ``.env`` file (see :func:`dotenv_path`); set variables always win.

    A file is read again when it changes. One line on stderr says why a file or a line is not
    used (not UTF-8, too large, a value of the wrong shape), naming the variable, never its value.
    """
    from dotenv import dotenv_values

    path = dotenv_path()
    if path is None:
        return
    try:
        stat = path.stat()
        if _dotenv_seen.get(path) == (stat.st_mtime_ns, stat.st_size):
            return
        _dotenv_seen[path] = (stat.st_mtime_ns, stat.st_size)
        with path.open("rb") as fh:
            raw = fh.read(DOTENV_MAX_BYTES + 1)
    except OSError as exc:
        return _say(f"Ignored {path}: cannot read it ({exc.strerror}).")
    if len(raw) > DOTENV_MAX_BYTES:
        return _say(f"Ignored {path}: larger than {DOTENV_MAX_BYTES // 1024} KiB, so it is no file of keys.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return _say(f"Ignored {path}: it is not UTF-8 text (save it as UTF-8).")
    file_values = {k: v for k, v in dotenv_values(stream=io.StringIO(text), interpolate=False).items() if v is not None}
    for name, value in file_values.items():
        value = value.strip()
        if name in os.environ and not from_dotenv(name):
            continue  # set in the environment: it wins
        why = _dotenv_refusal(name, value, file_values)
        if why is None:
            os.environ[name] = _dotenv_values[name] = value
        elif why:
            _say(f"Ignored {name} in {path}: {why}.")
