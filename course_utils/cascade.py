"""The multimodal LLM cascade: try each configured provider in turn, the offline answerer last.

Free tiers run out, keys expire and services go down, so the course never depends on one provider.
:func:`get_cascade` returns a :class:`Cascade` that tries, in order, Gemini (``google-genai`` SDK),
Ollama Cloud, Groq, Hugging Face, Cohere, OpenRouter, OpenAI and xAI (all through the ``openai``
SDK against their OpenAI-compatible endpoints), a local Ollama server, and finally the rule-based
:class:`~course_utils.llm.OfflineAnswerer`. A provider without a key is skipped; one that fails
(rate limit, server error, timeout, rejected key, empty answer, ...) is recorded and the next one
is tried. Every answer says who gave it (:class:`~course_utils.llm.LLMResponse`).

Configuration, all read at call time: API keys from the environment, a ``.env`` file, or Colab
secrets; ``<PREFIX>_BASE_URL``, ``<PREFIX>_MODEL`` and ``<PREFIX>_VISION_MODEL`` per provider;
``COURSE_LLM_PROVIDERS`` (order and subset), ``COURSE_LLM_TIMEOUT`` (seconds per request) and
``COURSE_OFFLINE=1`` (offline answerer only). Introduced in 04_multimodal_generation.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .errors import CourseError
from .llm import OFFLINE_MODEL, Attempt, LLMResponse, OfflineAnswerer
from .llm_images import MAX_IMAGES, MAX_SIDE, EncodedImage, ImageInput, encode_images

DEFAULT_TIMEOUT = 60.0  # seconds per request; COURSE_LLM_TIMEOUT overrides
MAX_ANSWER_CHARS = 20_000  # a runaway answer is cut here, whatever max_tokens allowed
LOCAL_PROBE_TIMEOUT = 0.3  # seconds to wait for a local Ollama server before skipping it
DEFAULT_OLLAMA_HOST = "http://localhost:11434"


@dataclass(frozen=True)
class Provider:
    """One LLM service: how to reach it and which models to ask by default (no key is stored)."""

    name: str  # as written in COURSE_LLM_PROVIDERS
    display_name: str  # as reported in LLMResponse.provider
    protocol: str  # "gemini", "openai" (OpenAI-compatible), or "offline"
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
    Provider("offline", "offline", "offline", "", (), base_url=None, model=OFFLINE_MODEL, vision_model=OFFLINE_MODEL),
)
# fmt: on
PROVIDER_NAMES: tuple[str, ...] = tuple(p.name for p in PROVIDERS)
_BY_NAME = {p.name: p for p in PROVIDERS} | {p.display_name.lower(): p for p in PROVIDERS}
ALL_KEY_ENVS: tuple[str, ...] = tuple(env for p in PROVIDERS for env in p.key_envs)


@dataclass(frozen=True)
class ProviderInfo:
    """A provider's state as :meth:`Cascade.list_providers` reports it (no key, ever)."""

    name: str
    display_name: str
    state: str  # "configured" or "skipped"
    detail: str  # the models, or why it is skipped and what would enable it


class _Failed(Exception):
    """A provider did not answer: the cascade records ``reason`` and moves on."""

    def __init__(self, reason: str, rejected_key: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rejected_key = rejected_key


# -- configuration, read at call time ------------------------------------------------------------


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def offline_only() -> bool:
    """True when ``COURSE_OFFLINE`` asks for the offline answerer alone (same rule as embeddings)."""
    return os.environ.get("COURSE_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def load_dotenv_file() -> None:
    """Load a ``.env`` file from the current directory or a parent; set variables always win.

    Introduced in 04_multimodal_generation.
    """
    from dotenv import find_dotenv, load_dotenv

    path = find_dotenv(usecwd=True)
    if path:
        load_dotenv(path, override=False)


# Colab secrets a lookup did not find, so that a missing secret does not cost a round trip (or an
# access dialog) on every call; get_cascade() forgets them, so a secret added later is found.
_COLAB_MISSING: set[str] = set()


def colab_secret(name: str) -> str | None:
    """The Colab secret ``name``, or None outside Colab or when it is missing or not shared.

    A secret found is also put into ``os.environ`` (without overriding it), so that later calls and
    the command line in a ``!`` cell see it. Introduced in 04_multimodal_generation.
    """
    if name in _COLAB_MISSING:
        return None
    try:
        from google.colab import userdata  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        value = userdata.get(name)
    except Exception:  # SecretNotFoundError, NotebookAccessError, TimeoutException, ...: not available
        value = None
    if not isinstance(value, str) or not value.strip():
        _COLAB_MISSING.add(name)
        return None
    os.environ.setdefault(name, value.strip())
    return value.strip()


def _key(provider: Provider) -> tuple[str, str] | None:
    """(env var, key) for ``provider`` from the environment (incl. ``.env``) or Colab secrets."""
    for name in provider.key_envs:
        value = _env(name)
        if value:
            return name, value
    for name in provider.key_envs:
        value = colab_secret(name)
        if value:
            return name, value
    return None


def _ollama_host() -> str:
    host = _env("OLLAMA_HOST") or DEFAULT_OLLAMA_HOST
    if "://" not in host:
        host = "http://" + host  # `ollama serve` accepts OLLAMA_HOST=127.0.0.1:11434
    return host.rstrip("/").replace("://0.0.0.0", "://localhost")


def _base_url(provider: Provider) -> str | None:
    if provider.local:
        return _ollama_host() + "/v1"
    return _env(f"{provider.env_prefix}_BASE_URL") or provider.base_url


def _model(provider: Provider, vision: bool) -> str | None:
    """The model to ask; None when the provider has no vision model (``<PREFIX>_VISION_MODEL=``)."""
    if provider.protocol == "offline":
        return provider.model
    if not vision:
        return _env(f"{provider.env_prefix}_MODEL") or provider.model
    name = f"{provider.env_prefix}_VISION_MODEL"
    return _env(name) if name in os.environ else provider.vision_model


def _timeout(timeout: float | None) -> float:
    if timeout is None:
        raw = _env("COURSE_LLM_TIMEOUT")
        if raw is None:
            return DEFAULT_TIMEOUT
        try:
            timeout = float(raw)
        except ValueError:
            raise CourseError(f"COURSE_LLM_TIMEOUT={raw!r} is not a number of seconds (e.g. 60).") from None
    if not timeout > 0:
        raise CourseError(f"The LLM timeout must be a positive number of seconds, not {timeout!r}.")
    return float(timeout)


def parse_provider_names(names: str | Sequence[str], source: str = "providers") -> list[Provider]:
    """Providers from names like ``"gemini,openai,offline"`` (order kept, duplicates dropped).

    Raises :class:`CourseError` listing the valid names for an unknown one.
    Introduced in 04_multimodal_generation.
    """
    items = names.split(",") if isinstance(names, str) else list(names)
    chosen: list[Provider] = []
    for item in items:
        key = str(item).strip().lower()
        if not key:
            continue
        if key not in _BY_NAME:
            raise CourseError(
                f"{source}: unknown LLM provider {str(item).strip()!r}; valid names are {', '.join(PROVIDER_NAMES)}."
            )
        if _BY_NAME[key] not in chosen:
            chosen.append(_BY_NAME[key])
    if not chosen:
        raise CourseError(f"{source}: no LLM provider named; valid names are {', '.join(PROVIDER_NAMES)}.")
    return chosen


def _probe_local_ollama(model: str) -> str | None:
    """Why the local Ollama server cannot answer with ``model``, or None when it can."""
    host = _ollama_host()
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


def _secrets() -> list[str]:
    """Every configured key value (long enough to be a real key), for scrubbing text we show."""
    values = {os.environ.get(name, "").strip() for name in ALL_KEY_ENVS}
    return sorted((v for v in values if len(v) >= 8), key=len, reverse=True)


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _short(text: object, limit: int = 160) -> str:
    """One line of a server's message, keys scrubbed before it is cut (a cut key would survive)."""
    text = _scrub(" ".join(str(text or "").split()), _secrets())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _status_failure(code: int, message: str, model: str, key_env: str | None) -> _Failed:
    """The reason for an HTTP error status; 401/403 mark the key as rejected."""
    detail = f": {_short(message)}" if message else ""
    if code in (401, 403):
        check = f"; check {key_env}" if key_env else ""
        return _Failed(f"key rejected (HTTP {code}{check}){detail}", rejected_key=True)
    if code == 429:
        return _Failed(f"rate limited or out of quota (HTTP 429){detail}")
    if code == 404:
        return _Failed(f"model {model!r} not found (HTTP 404){detail}")
    if code >= 500:
        return _Failed(f"server error (HTTP {code}){detail}")
    return _Failed(f"request refused (HTTP {code}){detail}")


def _httpx_errors(name: str) -> tuple[type[BaseException], ...]:
    """An httpx exception class (``TransportError``, ``TimeoutException``) from httpx and httpx2,
    whichever the installed google-genai uses."""
    found: list[type[BaseException]] = []
    for module in ("httpx", "httpx2"):
        try:
            found.append(getattr(__import__(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(found)


# -- the two wire protocols ----------------------------------------------------------------------


def openai_messages(prompt: str, images: Sequence[EncodedImage], system_prompt: str | None = None) -> list[dict]:
    """Chat messages for an OpenAI-compatible API: the text, then each image as a data URI.

    Introduced in 04_multimodal_generation.
    """
    messages: list[dict] = [{"role": "system", "content": system_prompt}] if system_prompt else []
    if not images:
        messages.append({"role": "user", "content": prompt})
        return messages
    content: list[dict] = [{"type": "text", "text": prompt}]
    content += [{"type": "image_url", "image_url": {"url": image.data_uri()}} for image in images]
    messages.append({"role": "user", "content": content})
    return messages


def _field(obj: Any, name: str) -> Any:
    """An attribute or dict item: lenient SDK parsing may leave unexpected shapes as dicts."""
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _openai_text(completion: Any) -> str:
    choices = _field(completion, "choices")
    if not isinstance(choices, list):
        raise _Failed("malformed answer (no list of choices)")
    if not choices:
        raise _Failed("empty answer (no choices)")
    content = _field(_field(choices[0], "message"), "content")
    if isinstance(content, list):  # some services return content blocks
        content = "".join(str(_field(block, "text") or "") for block in content)
    if content is not None and not isinstance(content, str):
        raise _Failed("malformed answer (content is not text)")
    # reasoning models on some services put their thinking inline before the answer
    text = re.sub(r"^\s*<think>.*?</think>", "", content or "", flags=re.S).strip()
    if not text:
        raise _Failed(f"empty answer (finish_reason={_field(choices[0], 'finish_reason')})")
    return text


def _call_openai(
    provider: Provider,
    key: tuple[str, str] | None,
    model: str,
    prompt: str,
    images: Sequence[EncodedImage],
    system_prompt: str | None,
    max_tokens: int,
    timeout: float,
) -> str:
    import openai

    key_env, api_key = key if key else (None, "ollama")  # a local Ollama ignores the key
    try:
        # max_retries=0: the SDK would otherwise retry 429/5xx itself; the cascade moves on instead
        with openai.OpenAI(api_key=api_key, base_url=_base_url(provider), timeout=timeout, max_retries=0) as client:
            completion = client.chat.completions.create(
                model=model,
                messages=openai_messages(prompt, images, system_prompt),  # type: ignore[arg-type]
                **{provider.tokens_param: max_tokens},
            )
    except openai.APIStatusError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error") if isinstance(body.get("error"), dict) else body
        raise _status_failure(exc.status_code, str(error.get("message") or ""), model, key_env) from None
    except openai.APITimeoutError:
        raise _Failed(f"timed out after {timeout:g} s") from None
    except openai.APIConnectionError as exc:
        raise _Failed(f"connection failed ({type(exc.__cause__ or exc).__name__})") from None
    except (openai.APIResponseValidationError, json.JSONDecodeError):
        raise _Failed("malformed answer (not the expected JSON)") from None
    return _openai_text(completion)


def _gemini_thinking_off(model: str) -> bool:
    """The 2.5 Flash family can switch thinking off (thinking_budget=0); Pro and 3.x cannot."""
    return re.search(r"gemini-2\.5-flash(?!-image)", model) is not None


def gemini_parts(prompt: str, images: Sequence[EncodedImage]) -> list:
    """The parts of a Gemini request: the text, then each image as inline bytes with its MIME type.

    Introduced in 04_multimodal_generation.
    """
    from google.genai import types

    parts = [types.Part.from_text(text=prompt)]
    parts += [types.Part.from_bytes(data=image.data, mime_type=image.mime_type) for image in images]
    return parts


def gemini_config(model: str, system_prompt: str | None = None, max_tokens: int = 1024) -> Any:
    """A ``GenerateContentConfig``: system instruction, output bound, thinking off where possible.

    Thinking tokens count against ``max_output_tokens``; with thinking on, a short budget can be
    spent before the answer starts. Introduced in 04_multimodal_generation.
    """
    from google.genai import types

    config = types.GenerateContentConfig(system_instruction=system_prompt, max_output_tokens=max_tokens)
    if _gemini_thinking_off(model):
        config.thinking_config = types.ThinkingConfig(thinking_budget=0)
    return config


def _gemini_client(api_key: str, base_url: str | None, timeout: float) -> Any:
    from google import genai
    from google.genai import types

    options = types.HttpOptions(base_url=base_url, timeout=int(timeout * 1000))  # milliseconds
    if hasattr(types, "HttpRetryOptions"):  # google-genai >= 1.20: no SDK retries, the cascade moves on
        options.retry_options = types.HttpRetryOptions(attempts=1)
    return genai.Client(api_key=api_key, vertexai=False, http_options=options)


def _gemini_text(response: Any) -> str:
    candidates = getattr(response, "candidates", None)
    if not candidates:
        block = getattr(getattr(response, "prompt_feedback", None), "block_reason", None)
        raise _Failed(f"prompt blocked ({getattr(block, 'name', block)})" if block else "empty answer (no candidates)")
    content = getattr(candidates[0], "content", None)
    parts = getattr(content, "parts", None) or []
    text = "".join(p.text for p in parts if isinstance(getattr(p, "text", None), str) and not p.thought).strip()
    if not text:
        finish = getattr(candidates[0], "finish_reason", None)
        raise _Failed(f"empty answer (finish_reason={getattr(finish, 'name', finish)})")
    return text


def _api_key_invalid(details: Any) -> bool:
    """Gemini answers a bad key with HTTP 400 and the structured reason ``API_KEY_INVALID``."""
    error = details.get("error", details) if isinstance(details, dict) else {}
    entries = error.get("details") if isinstance(error, dict) else None
    return any(isinstance(d, dict) and d.get("reason") == "API_KEY_INVALID" for d in entries or [])


@contextmanager
def _gemini_errors(model: str, key_env: str, timeout: float) -> Iterator[None]:
    """Turn google-genai's errors into :class:`_Failed` with a reason; anything else propagates."""
    import pydantic
    from google.genai import errors

    try:
        yield
    except errors.APIError as exc:
        code = exc.code if isinstance(exc.code, int) else 0
        if _api_key_invalid(exc.details):
            code = 401
        raise _status_failure(code, str(exc.message or ""), model, key_env) from None
    except _httpx_errors("TimeoutException"):
        raise _Failed(f"timed out after {timeout:g} s") from None
    except _httpx_errors("TransportError") as exc:  # refused, reset or dropped mid-response
        raise _Failed(f"connection failed ({type(exc).__name__})") from None
    except (errors.UnknownApiResponseError, json.JSONDecodeError, pydantic.ValidationError):
        raise _Failed("malformed answer (not the expected JSON)") from None


def _call_gemini(
    provider: Provider,
    key: tuple[str, str],
    model: str,
    prompt: str,
    images: Sequence[EncodedImage],
    system_prompt: str | None,
    max_tokens: int,
    timeout: float,
) -> str:
    from google.genai import types

    key_env, api_key = key
    # Built outside _gemini_errors: a field the installed SDK lacks (Colab's google-genai is a major
    # behind) raises a pydantic error that is our bug, not the provider's "malformed answer".
    contents = [types.Content(role="user", parts=gemini_parts(prompt, images))]
    config = gemini_config(model, system_prompt, max_tokens)
    client = _gemini_client(api_key, _base_url(provider), timeout)
    try:
        with _gemini_errors(model, key_env, timeout):
            response = client.models.generate_content(model=model, contents=contents, config=config)
    finally:
        if hasattr(client, "close"):  # older google-genai clients have no close()
            client.close()
    return _gemini_text(response)


# -- the cascade ---------------------------------------------------------------------------------


class Cascade:
    """Ask each configured LLM provider in turn until one answers; the offline answerer is last.

    Build it with :func:`get_cascade`. It holds no key: keys, models and endpoints are read from
    the environment on every call. Introduced in 04_multimodal_generation.
    """

    def __init__(
        self,
        providers: str | Sequence[str] | None = None,
        timeout: float | None = None,
        verbose: bool = False,
        max_side: int = MAX_SIDE,
        max_images: int = MAX_IMAGES,
    ) -> None:
        self._names = [p.name for p in parse_provider_names(providers)] if providers is not None else None
        self._timeout = None if timeout is None else _timeout(timeout)
        self.verbose = verbose
        self.max_side = max_side
        self.max_images = max_images

    def __repr__(self) -> str:
        # the arguments only: the environment is read (and may be fixed) at call time
        return f"Cascade(providers={self._names!r}, timeout={self._timeout!r}, verbose={self.verbose!r})"

    def order(self) -> list[Provider]:
        """The providers to try, in order: ``COURSE_OFFLINE`` > ``providers=`` > ``COURSE_LLM_PROVIDERS``."""
        if offline_only():
            return [_BY_NAME["offline"]]
        if self._names is not None:
            return [_BY_NAME[name] for name in self._names]
        configured = _env("COURSE_LLM_PROVIDERS")
        if configured:
            return parse_provider_names(configured, "COURSE_LLM_PROVIDERS")
        return list(PROVIDERS)

    def _unavailable(self, provider: Provider, model: str | None, n_images: int, vision: bool) -> str | None:
        """Why ``provider`` is skipped for this call, or None when it can be asked."""
        if provider.protocol == "offline":
            return None
        if provider.key_envs and _key(provider) is None:
            return f"{provider.key_envs[0]} not set"
        if model is None:
            return f"no vision model (set {provider.env_prefix}_VISION_MODEL)"
        if vision and provider.max_images is not None and n_images > provider.max_images:
            return f"takes at most {provider.max_images} images per request ({n_images} given)"
        if provider.local:
            return _probe_local_ollama(model)
        return None

    def list_providers(self) -> list[ProviderInfo]:
        """The providers in cascade order, each ``configured`` or ``skipped`` with the reason.

        Introduced in 04_multimodal_generation.
        """
        load_dotenv_file()
        infos = []
        for provider in self.order():
            text_model, vision_model = _model(provider, False), _model(provider, True)
            why = self._unavailable(provider, text_model, 0, False)
            if provider.protocol == "offline":
                detail = "rule-based answerer: reads the catalog text, looks at no image, always answers"
            elif why:
                where = f" (key: {provider.key_page})" if provider.key_envs and provider.key_page else ""
                detail = why + where
            else:
                detail = f"text: {text_model}, vision: {vision_model or 'none'}"
            infos.append(ProviderInfo(provider.name, provider.display_name, "skipped" if why else "configured", detail))
        return infos

    def summary(self) -> str:
        """A readable table: which providers will be tried, which are skipped and how to enable them.

        Introduced in 04_multimodal_generation.
        """
        infos = self.list_providers()
        width = max(len(info.display_name) for info in infos)
        lines = ["LLM cascade (tried in this order; the first provider that answers wins):"]
        lines += [
            f"  {i:>2}. {info.display_name:<{width}}  {info.state:<10}  {info.detail}"
            for i, info in enumerate(infos, start=1)
        ]
        if offline_only():
            lines.append("  COURSE_OFFLINE=1: only the offline answerer is used.")
        elif all(info.state == "skipped" or info.name == "offline" for info in infos):
            lines.append(
                "  No LLM is configured: set one of the keys above (in the environment, a .env "
                "file or Colab secrets) to get real answers."
            )
        return "\n".join(lines)

    def generate(
        self,
        prompt: str,
        system_prompt: str | None = None,
        model: str | None = None,
        max_tokens: int = 1024,
        provider: str | None = None,
    ) -> LLMResponse:
        """Answer a text prompt with the first provider that can.

        ``provider`` pins one provider (by name or display name) and ``model`` its model, e.g. to
        ask the very model that answered another call. Introduced in 04_multimodal_generation.
        """
        return self._run(prompt, [], system_prompt, model, max_tokens, provider, vision=False)

    def generate_multimodal(
        self,
        prompt: str,
        images: Sequence[ImageInput],
        system_prompt: str | None = None,
        model: str | None = None,
        max_tokens: int = 1024,
        provider: str | None = None,
    ) -> LLMResponse:
        """Answer a prompt about ``images`` (paths, bytes or PIL images, in rank order).

        Providers without a vision model are skipped. With no images this is :meth:`generate`.
        Introduced in 04_multimodal_generation.
        """
        encoded = encode_images(images, self.max_side, self.max_images)  # bad images fail before any request
        return self._run(prompt, encoded, system_prompt, model, max_tokens, provider, vision=bool(encoded))

    def _run(
        self,
        prompt: str,
        images: list[EncodedImage],
        system_prompt: str | None,
        model: str | None,
        max_tokens: int,
        pinned: str | None,
        vision: bool,
    ) -> LLMResponse:
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise CourseError(f"max_tokens must be a positive whole number, not {max_tokens!r}.")
        load_dotenv_file()
        timeout = _timeout(self._timeout)
        order = self.order()
        if pinned is not None:
            chosen = parse_provider_names([pinned], "provider")[0]
            if offline_only() and chosen.protocol != "offline":
                raise CourseError(
                    f"provider={pinned!r} was asked for, but COURSE_OFFLINE=1 allows only the offline answerer."
                )
            order = [chosen]
        attempts: list[Attempt] = []
        for candidate in order:
            use_model = model if model and candidate.protocol != "offline" else _model(candidate, vision)
            why = self._unavailable(candidate, use_model, len(images), vision)
            if why:
                attempts.append(Attempt(candidate.display_name, "skipped", _scrub(why, _secrets())))
                continue
            assert use_model is not None
            try:
                text = self._ask(candidate, use_model, prompt, images, system_prompt, max_tokens, timeout)
            except _Failed as failure:
                self._report(candidate, failure, attempts)
                continue
            if len(text) > MAX_ANSWER_CHARS:
                text = text[:MAX_ANSWER_CHARS] + " […answer truncated]"
            attempts.append(Attempt(candidate.display_name, "answered"))
            return LLMResponse(text, candidate.display_name, use_model, tuple(attempts))
        lines = "\n".join(f"  - {a.provider}: {a.outcome} ({a.reason})" for a in attempts)
        raise CourseError(
            f"No LLM provider answered:\n{lines}\nSet a key (see get_cascade().summary()) or add "
            "'offline' to COURSE_LLM_PROVIDERS for the rule-based answerer."
        )

    def _ask(
        self,
        provider: Provider,
        model: str,
        prompt: str,
        images: list[EncodedImage],
        system_prompt: str | None,
        max_tokens: int,
        timeout: float,
    ) -> str:
        if provider.protocol == "offline":
            return OfflineAnswerer().generate_multimodal(prompt, images, system_prompt).text
        key = _key(provider)
        if provider.protocol == "gemini":
            assert key is not None
            return _call_gemini(provider, key, model, prompt, images, system_prompt, max_tokens, timeout)
        return _call_openai(provider, key, model, prompt, images, system_prompt, max_tokens, timeout)

    def _report(self, provider: Provider, failure: _Failed, attempts: list[Attempt]) -> None:
        reason = _scrub(failure.reason, _secrets())
        attempts.append(Attempt(provider.display_name, "failed", reason))
        if failure.rejected_key:
            key = _key(provider)
            where = key[0] if key else provider.key_envs[0]
            print(
                f"Warning: {provider.display_name} rejected the key in {where}; check or replace it "
                f"({provider.key_page}).",
                file=sys.stderr,
            )
        if self.verbose:
            print(f"[LLM] {provider.display_name} did not answer: {reason}. Trying the next provider.")


def get_cascade(
    verbose: bool = True, providers: str | Sequence[str] | None = None, timeout: float | None = None
) -> Cascade:
    """The course's LLM: a :class:`Cascade` over every provider, the offline answerer last.

    Parameters
    ----------
    verbose : print the provider summary now, and one line whenever a provider fails.
    providers : names in order (e.g. ``"gemini,openai,offline"``); default ``COURSE_LLM_PROVIDERS``
        or all of them.
    timeout : seconds per request; default ``COURSE_LLM_TIMEOUT`` or 60.

    Introduced in 04_multimodal_generation.
    """
    _COLAB_MISSING.clear()  # a secret added since the last call is looked up again
    cascade = Cascade(providers=providers, timeout=timeout, verbose=verbose)
    if verbose:
        print(cascade.summary())
    return cascade


def raw_gemini_call(
    prompt: str, images: Sequence[ImageInput], model: str | None = None, system_prompt: str | None = None
) -> str | None:
    """One Gemini request without the cascade: what a provider-specific multimodal call looks like.

    Returns the answer text, or None after printing one line when ``GEMINI_API_KEY`` is not set or
    the call fails. Introduced in 04_multimodal_generation.
    """
    from google.genai import types

    load_dotenv_file()
    gemini = _BY_NAME["gemini"]
    key = _key(gemini)
    if key is None:
        print("Skipped the raw Gemini call: GEMINI_API_KEY is not set.")
        return None
    model = model or _model(gemini, vision=True) or gemini.model
    # genai.Client(api_key=..., http_options=HttpOptions(timeout=..., retry_options=...))
    client = _gemini_client(key[1], _base_url(gemini), _timeout(None))
    # [Part.from_text(text=prompt), Part.from_bytes(data=<png bytes>, mime_type="image/png"), ...]
    parts = gemini_parts(prompt, encode_images(images))
    config = gemini_config(model, system_prompt)  # system instruction, max tokens, thinking off
    try:
        with _gemini_errors(model, key[0], _timeout(None)):  # extra code – SDK errors become one reason
            response = client.models.generate_content(
                model=model, contents=[types.Content(role="user", parts=parts)], config=config
            )
        return _gemini_text(response)
    except _Failed as failure:
        print(f"The raw Gemini call failed: {_scrub(failure.reason, _secrets())}.")
    return None
