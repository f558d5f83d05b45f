"""The OpenAI-compatible protocol: chat messages with images as data URIs, through the ``openai`` SDK.

Ollama Cloud, Groq, Hugging Face, Cohere, OpenRouter, OpenAI, xAI and a local Ollama server all
speak it. Introduced in 04_multimodal_generation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from .backoff import retry_after_header
from .base import ProviderFailure, Usage, status_failure
from .deadline import within
from .images import EncodedImage
from .providers import Provider, base_url

__all__ = ["call_openai", "openai_messages"]


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


def _answer_text(completion: Any) -> str:
    choices = _field(completion, "choices")
    if not isinstance(choices, list):
        raise ProviderFailure("malformed answer (no list of choices)")
    if not choices:
        raise ProviderFailure("empty answer (no choices)")
    content = _field(_field(choices[0], "message"), "content")
    if isinstance(content, list):  # some services return content blocks
        content = "".join(str(_field(block, "text") or "") for block in content)
    if content is not None and not isinstance(content, str):
        raise ProviderFailure("malformed answer (content is not text)")
    # reasoning models on some services put their thinking inline before the answer
    text = re.sub(r"^\s*<think>.*?</think>", "", content or "", flags=re.S).strip()
    if not text:
        raise ProviderFailure(f"empty answer (finish_reason={_field(choices[0], 'finish_reason')})")
    return text


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _usage(completion: Any) -> Usage | None:
    """The token counts the service reported, if any (one number for the whole prompt)."""
    usage = _field(completion, "usage")
    if usage is None:
        return None
    prompt, output = _count(_field(usage, "prompt_tokens")), _count(_field(usage, "completion_tokens"))
    return Usage(prompt, output) if prompt is not None or output is not None else None


def call_openai(
    provider: Provider,
    key: tuple[str, str] | None,
    model: str,
    prompt: str,
    images: Sequence[EncodedImage],
    system_prompt: str | None,
    max_tokens: int,
    timeout: float,
) -> tuple[str, Usage | None]:
    """One chat-completions request: the answer and the token usage the service reported.

    Raises :class:`~course_utils.llm.base.ProviderFailure` with a reason. ``key`` is
    ``(env var, key)``, or None for a local server that needs none.
    """
    import openai

    key_env, api_key = key if key else (None, "ollama")  # a local Ollama ignores the key
    # max_retries=0: the SDK would otherwise retry 429/5xx itself; the cascade decides (backoff.py)
    client = openai.OpenAI(api_key=api_key, base_url=base_url(provider), timeout=timeout, max_retries=0)

    def request() -> Any:
        return client.chat.completions.create(
            model=model,
            messages=openai_messages(prompt, images, system_prompt),  # type: ignore[arg-type]
            **{provider.tokens_param: max_tokens},
        )

    try:
        completion = within(timeout, request, client.close)  # the whole answer by the timeout
    except openai.APIStatusError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error") if isinstance(body.get("error"), dict) else body
        wait = retry_after_header(exc.response.headers.get("retry-after"))
        raise status_failure(exc.status_code, str(error.get("message") or ""), model, key_env, wait) from None
    except openai.APITimeoutError:
        raise ProviderFailure(f"timed out after {timeout:g} s") from None
    except openai.APIConnectionError as exc:
        raise ProviderFailure(f"connection failed ({type(exc.__cause__ or exc).__name__})") from None
    except (openai.APIResponseValidationError, json.JSONDecodeError):
        raise ProviderFailure("malformed answer (not the expected JSON)") from None
    finally:
        client.close()
    return _answer_text(completion), _usage(completion)
