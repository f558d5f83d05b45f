"""The provider table: every LLM service the cascade knows, how to reach it, which models to ask.

Data, one entry per provider; adding a provider is adding an entry (see docs/architecture.md).
Endpoints and models can be overridden per provider with ``<PREFIX>_BASE_URL``, ``<PREFIX>_MODEL``
and ``<PREFIX>_VISION_MODEL``. No key is ever stored here.
"""

from __future__ import annotations

import http.client
import json
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

from .. import config
from ..errors import CourseError

__all__ = [
    "ALL_KEY_ENVS",
    "OFFLINE_MODEL",
    "OFFLINE_PROVIDER",
    "PROVIDERS",
    "PROVIDER_NAMES",
    "Provider",
    "ProviderInfo",
    "base_url",
    "by_name",
    "model_for",
    "parse_provider_names",
    "probe_local_ollama",
]

OFFLINE_PROVIDER = "offline"
OFFLINE_MODEL = "rule-based"
LOCAL_PROBE_TIMEOUT = 0.3  # seconds to wait for a local Ollama server before skipping it


@dataclass(frozen=True)
class Provider:
    """One LLM service: how to reach it and which models to ask by default (no key is stored)."""

    name: str  # as written in COURSE_LLM_PROVIDERS
    display_name: str  # as reported in LLMResponse.provider
    protocol: str  # "gemini", "openai" (OpenAI-compatible), "local" (in this process) or "offline"
    env_prefix: str  # <PREFIX>_BASE_URL, <PREFIX>_MODEL, <PREFIX>_VISION_MODEL
    key_envs: tuple[str, ...]  # where the key may be; empty: needs none
    base_url: str | None
    model: str
    vision_model: str | None
    key_page: str = ""  # where a student gets a key
    max_images: int | None = None  # the service's own per-request limit
    tokens_param: str = "max_tokens"  # OpenAI's newer models only take max_completion_tokens

    @property
    def local(self) -> bool:
        return self.name == "ollama-local"


# fmt: off
PROVIDERS: tuple[Provider, ...] = (
    Provider(
        "gemini", "Gemini", "gemini", "GEMINI", ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        base_url=None,  # the SDK's own endpoint
        model="gemini-2.5-flash", vision_model="gemini-2.5-flash",
        key_page="https://aistudio.google.com/apikey",
    ),
    Provider(
        "ollama", "Ollama Cloud", "openai", "OLLAMA", ("OLLAMA_API_KEY",),
        base_url="https://ollama.com/v1",
        model="gpt-oss:120b", vision_model="qwen3-vl:235b-instruct",
        key_page="https://ollama.com/settings/keys",
    ),
    Provider(
        "groq", "Groq", "openai", "GROQ", ("GROQ_API_KEY",),
        base_url="https://api.groq.com/openai/v1",
        model="llama-3.3-70b-versatile", vision_model="meta-llama/llama-4-scout-17b-16e-instruct",
        key_page="https://console.groq.com/keys", max_images=5,
    ),
    Provider(
        "huggingface", "Hugging Face", "openai", "HF", ("HF_TOKEN",),
        base_url="https://router.huggingface.co/v1",
        model="meta-llama/Llama-3.1-8B-Instruct", vision_model="Qwen/Qwen2.5-VL-7B-Instruct",
        key_page="https://huggingface.co/settings/tokens",
    ),
    Provider(
        "cohere", "Cohere", "openai", "COHERE", ("COHERE_API_KEY",),
        base_url="https://api.cohere.ai/compatibility/v1",
        model="command-a-03-2025", vision_model="command-a-vision-07-2025",
        key_page="https://dashboard.cohere.com/api-keys",
    ),
    Provider(
        "openrouter", "OpenRouter", "openai", "OPENROUTER", ("OPENROUTER_API_KEY",),
        base_url="https://openrouter.ai/api/v1",
        model="google/gemma-3-27b-it:free", vision_model="google/gemma-3-27b-it:free",
        key_page="https://openrouter.ai/keys",
    ),
    Provider(
        "openai", "OpenAI", "openai", "OPENAI", ("OPENAI_API_KEY",),
        base_url="https://api.openai.com/v1",
        model="gpt-4o-mini", vision_model="gpt-4o-mini",
        key_page="https://platform.openai.com/api-keys", tokens_param="max_completion_tokens",
    ),
    Provider(
        "xai", "xAI", "openai", "XAI", ("XAI_API_KEY",),
        base_url="https://api.x.ai/v1",
        model="grok-3-mini", vision_model="grok-2-vision-1212",
        key_page="https://console.x.ai",
    ),
    Provider(
        "ollama-local", "Ollama (local)", "openai", "OLLAMA_LOCAL", (),
        base_url=None,  # OLLAMA_HOST (default http://localhost:11434) + /v1
        model="gemma3:4b", vision_model="gemma3:4b",
        key_page="https://ollama.com/download",
    ),
    Provider(
        "local", "local", "local", "LOCAL_VLM", (),
        base_url=None,  # runs in this process through transformers (llm/local_vlm.py)
        model=config.DEFAULT_LOCAL_VLM_MODEL, vision_model=config.DEFAULT_LOCAL_VLM_MODEL,
        key_page="https://huggingface.co/HuggingFaceTB/SmolVLM-500M-Instruct",
    ),
    Provider("offline", "offline", "offline", "", (), base_url=None, model=OFFLINE_MODEL, vision_model=OFFLINE_MODEL),
)
# fmt: on
PROVIDER_NAMES: tuple[str, ...] = tuple(p.name for p in PROVIDERS)
BY_NAME = {p.name: p for p in PROVIDERS} | {p.display_name.lower(): p for p in PROVIDERS}
ALL_KEY_ENVS: tuple[str, ...] = tuple(env for p in PROVIDERS for env in p.key_envs)


@dataclass(frozen=True)
class ProviderInfo:
    """A provider's state as :meth:`Cascade.list_providers` reports it (no key, ever)."""

    name: str
    display_name: str
    state: str  # "configured" or "skipped"
    detail: str  # the models, or why it is skipped and what would enable it


def by_name(name: str) -> Provider:
    """The provider called ``name`` (as in ``COURSE_LLM_PROVIDERS``, or its display name)."""
    return parse_provider_names([name], "provider")[0]


def base_url(provider: Provider) -> str | None:
    """Where to send ``provider``'s requests: ``<PREFIX>_BASE_URL``, else its default endpoint."""
    if provider.local:
        return config.ollama_host() + "/v1"
    return config.provider_setting(provider.env_prefix, "BASE_URL") or provider.base_url


def model_for(provider: Provider, vision: bool) -> str | None:
    """The model to ask; None when the provider has no vision model (``<PREFIX>_VISION_MODEL=``)."""
    if provider.protocol == "offline":
        return provider.model
    if provider.protocol == "local":
        return config.local_vlm_model()  # one model for text and images
    if not vision:
        return config.provider_setting(provider.env_prefix, "MODEL") or provider.model
    name = f"{provider.env_prefix}_VISION_MODEL"
    return config.env(name) if config.is_set(name) else provider.vision_model


def parse_provider_names(names: str | Sequence[str], source: str = "providers") -> list[Provider]:
    """Providers from names like ``"gemini,openai,offline"`` (order kept, duplicates dropped).

    Raises :class:`CourseError` listing the valid names for an unknown one.
    """
    items = names.split(",") if isinstance(names, str) else list(names)
    chosen: list[Provider] = []
    for item in items:
        key = str(item).strip().lower()
        if not key:
            continue
        if key not in BY_NAME:
            raise CourseError(
                f"{source}: unknown LLM provider {str(item).strip()!r}; valid names are {', '.join(PROVIDER_NAMES)}."
            )
        if BY_NAME[key] not in chosen:
            chosen.append(BY_NAME[key])
    if not chosen:
        raise CourseError(f"{source}: no LLM provider named; valid names are {', '.join(PROVIDER_NAMES)}.")
    return chosen


def probe_local_ollama(model: str) -> str | None:
    """Why the local Ollama server cannot answer with ``model``, or None when it can."""
    host = config.ollama_host()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # localhost: no proxy
    try:
        with opener.open(host + "/api/tags", timeout=LOCAL_PROBE_TIMEOUT) as reply:
            tags = json.loads(reply.read())
    except (OSError, ValueError, http.client.HTTPException):
        return f"no server answers at {host} (start `ollama serve`, or set OLLAMA_HOST)"
    models = tags.get("models") if isinstance(tags, dict) else None
    names = {str(m.get("name")) for m in models or [] if isinstance(m, dict)}
    if model in names or f"{model}:latest" in names:
        return None
    return f"model {model!r} is not pulled (run `ollama pull {model}`, or set OLLAMA_LOCAL_MODEL)"
