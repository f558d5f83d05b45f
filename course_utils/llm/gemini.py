"""Gemini's own protocol through the ``google-genai`` SDK: a list of parts, images as inline bytes.

Introduced in 04_multimodal_generation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .. import config
from .backoff import gemini_retry_delay, retry_after_header
from .base import ProviderFailure, Usage, status_failure
from .deadline import within
from .images import EncodedImage, ImageInput, encode_images
from .keys import find_key, key_problem, scrub
from .providers import Provider, base_url, by_name, endpoint_problem, model_for

__all__ = ["call_gemini", "gemini_config", "gemini_parts", "raw_gemini_call"]


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


def _thinking_off(model: str) -> bool:
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

    settings = types.GenerateContentConfig(system_instruction=system_prompt, max_output_tokens=max_tokens)
    if _thinking_off(model):
        settings.thinking_config = types.ThinkingConfig(thinking_budget=0)
    return settings


def _client(api_key: str, endpoint: str | None, timeout: float) -> Any:
    from google import genai
    from google.genai import types

    options = types.HttpOptions(base_url=endpoint, timeout=int(timeout * 1000))  # milliseconds
    if "client_args" in type(options).model_fields:  # no redirects: one would hand x-goog-api-key to another host
        options.client_args = {"follow_redirects": False}
    if hasattr(types, "HttpRetryOptions"):  # google-genai >= 1.20: no SDK retries, the cascade decides (backoff.py)
        options.retry_options = types.HttpRetryOptions(attempts=1)
    return genai.Client(api_key=api_key, vertexai=False, http_options=options)


def _answer_text(response: Any) -> str:
    candidates = getattr(response, "candidates", None)
    if not candidates:
        block = getattr(getattr(response, "prompt_feedback", None), "block_reason", None)
        raise ProviderFailure(
            f"prompt blocked ({getattr(block, 'name', block)})" if block else "empty answer (no candidates)"
        )
    content = getattr(candidates[0], "content", None)
    parts = getattr(content, "parts", None) or []
    text = "".join(p.text for p in parts if isinstance(getattr(p, "text", None), str) and not p.thought).strip()
    if not text:
        finish = getattr(candidates[0], "finish_reason", None)
        raise ProviderFailure(f"empty answer (finish_reason={getattr(finish, 'name', finish)})")
    return text


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _usage(response: Any) -> Usage | None:
    """Gemini's token counts, with the prompt's image tokens where it lists them per modality."""
    meta = getattr(response, "usage_metadata", None)
    if meta is None:
        return None
    image_tokens = None
    for detail in getattr(meta, "prompt_tokens_details", None) or []:
        modality = getattr(getattr(detail, "modality", None), "name", getattr(detail, "modality", None))
        if str(modality).upper() == "IMAGE":
            image_tokens = (image_tokens or 0) + (_count(getattr(detail, "token_count", None)) or 0)
    prompt = _count(getattr(meta, "prompt_token_count", None))
    output = _count(getattr(meta, "candidates_token_count", None))
    if prompt is None and output is None and image_tokens is None:
        return None
    return Usage(prompt, output, image_tokens)


def _api_key_invalid(details: Any) -> bool:
    """Gemini answers a bad key with HTTP 400 and the structured reason ``API_KEY_INVALID``."""
    error = details.get("error", details) if isinstance(details, dict) else {}
    entries = error.get("details") if isinstance(error, dict) else None
    return any(isinstance(d, dict) and d.get("reason") == "API_KEY_INVALID" for d in entries or [])


@contextmanager
def _sdk_errors(model: str, key_env: str, timeout: float) -> Iterator[None]:
    """Turn google-genai's errors into :class:`ProviderFailure` with a reason; anything else propagates."""
    import pydantic
    from google.genai import errors

    try:
        yield
    except errors.APIError as exc:
        code = exc.code if isinstance(exc.code, int) else 0
        if _api_key_invalid(exc.details):
            code = 401
        headers = getattr(exc.response, "headers", None) or {}
        wait = gemini_retry_delay(exc.details)
        wait = retry_after_header(headers.get("retry-after")) if wait is None else wait
        raise status_failure(code, str(exc.message or ""), model, key_env, wait) from None
    except _httpx_errors("TimeoutException"):
        raise ProviderFailure(f"timed out after {timeout:g} s") from None
    except _httpx_errors("TransportError") as exc:  # refused, reset or dropped mid-response
        raise ProviderFailure(f"connection failed ({type(exc).__name__})") from None
    except (errors.UnknownApiResponseError, json.JSONDecodeError, pydantic.ValidationError):
        raise ProviderFailure("malformed answer (not the expected JSON)") from None


def call_gemini(
    provider: Provider,
    key: tuple[str, str],
    model: str,
    prompt: str,
    images: Sequence[EncodedImage],
    system_prompt: str | None = None,
    max_tokens: int = 1024,
    timeout: float | None = None,
) -> tuple[str, Usage | None]:
    """One ``generate_content`` request: the text, then each image as inline bytes, in rank order.

    Returns the answer and the token usage Gemini reported. Raises
    :class:`~course_utils.llm.base.ProviderFailure` with a one-line reason when Gemini does not
    answer. Introduced in 04_multimodal_generation.
    """
    from google.genai import types

    key_env, api_key = key
    timeout = config.llm_timeout(timeout)
    # Built outside _sdk_errors: a field the installed SDK lacks (Colab's google-genai is a major
    # behind) raises a pydantic error that is our bug, not the provider's "malformed answer".
    # [Part.from_text(text=prompt), Part.from_bytes(data=<png bytes>, mime_type="image/png"), ...]
    contents = [types.Content(role="user", parts=gemini_parts(prompt, images))]
    settings = gemini_config(model, system_prompt, max_tokens)  # system instruction, max tokens, thinking off
    # genai.Client(api_key=..., http_options=HttpOptions(timeout=..., retry_options=...))
    client = _client(api_key, base_url(provider), timeout)
    close = getattr(client, "close", lambda: None)  # older google-genai clients have no close()

    def request() -> Any:
        return client.models.generate_content(model=model, contents=contents, config=settings)

    try:
        with _sdk_errors(model, key_env, timeout):  # extra code – SDK errors become one reason
            response = within(timeout, request, close)  # extra code – the whole answer by the timeout
    finally:
        close()
    return _answer_text(response), _usage(response)


def raw_gemini_call(
    prompt: str, images: Sequence[ImageInput], model: str | None = None, system_prompt: str | None = None
) -> str | None:
    """One Gemini request without the cascade: what a provider-specific multimodal call looks like.

    The request itself is :func:`call_gemini`. Returns the answer text, or None after printing one
    line when ``GEMINI_API_KEY`` is not set or the call fails. Introduced in 04_multimodal_generation.
    """
    config.load_dotenv_file()
    gemini = by_name("gemini")
    key = find_key(gemini)
    if key is None:
        print("Skipped the raw Gemini call: GEMINI_API_KEY is not set.")
        return None
    problem = key_problem(*key) or endpoint_problem(gemini)
    if problem:
        print(f"Skipped the raw Gemini call: {problem}.")
        return None
    model = model or model_for(gemini, vision=True) or gemini.model
    try:
        return call_gemini(gemini, key, model, prompt, encode_images(images), system_prompt)[0]
    except ProviderFailure as failure:
        print(f"The raw Gemini call failed: {scrub(failure.reason)}.")
    return None
