"""The multimodal LLM cascade: try each configured provider in turn, the offline answerer last.

Free tiers run out, keys expire and services go down, so the course never depends on one provider.
:func:`get_cascade` returns a :class:`Cascade` that tries, in order, Gemini (``google-genai`` SDK),
Ollama Cloud, Groq, Hugging Face, Cohere, OpenRouter, OpenAI and xAI (all through the ``openai``
SDK against their OpenAI-compatible endpoints), a local Ollama server, a vision-language model in
this process (``local``, by default only next to a CUDA GPU; see :mod:`.local_vlm`), and finally
the rule-based :class:`~course_utils.llm.offline.OfflineAnswerer`. A provider without a key is skipped; one that
fails (rate limit, server error, timeout, rejected key, empty answer, ...) is recorded and the next
one is tried. Every answer says who gave it (:class:`~course_utils.llm.base.LLMResponse`).

Three things keep a class on free tiers going (each in its own module): answers already paid for
come from the response cache (:mod:`.cache`), a call with nowhere else to go waits out a 429 or 503
(:mod:`.backoff`), and ``<PREFIX>_RPM`` spaces a provider's requests (:mod:`.pacing`).

Configuration is read at call time (see :mod:`course_utils.config`): keys from the environment, a
``.env`` file or Colab secrets; per-provider endpoints and models; ``COURSE_LLM_PROVIDERS``,
``COURSE_LLM_TIMEOUT``, ``COURSE_LLM_MAX_WAIT``, ``COURSE_LLM_CACHE`` and ``COURSE_OFFLINE``.
Introduced in 04_multimodal_generation.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .. import config
from ..errors import CourseError
from .backoff import patiently
from .base import Attempt, LLMResponse, ProviderFailure, Usage
from .cache import ResponseCache, cache_key
from .gemini import call_gemini
from .images import MAX_IMAGES, MAX_SIDE, EncodedImage, ImageInput, encode_images
from .keys import find_key, forget_missing_secrets, key_problem, scrub
from .local_vlm import call_local, cuda_available
from .offline import OfflineAnswerer
from .openai_compat import call_openai
from .pacing import Clock, Pacer
from .providers import (
    PROVIDERS,
    Provider,
    ProviderInfo,
    by_name,
    endpoint_problem,
    model_for,
    parse_provider_names,
    probe_local_ollama,
)

__all__ = ["Cascade", "get_cascade"]

MAX_ANSWER_CHARS = 20_000  # a runaway answer is cut here, whatever max_tokens allowed


class Cascade:
    """Ask each configured LLM provider in turn until one answers; the offline answerer is last.

    Build it with :func:`get_cascade`. It holds no key: keys, models and endpoints are read from
    the environment on every call. ``clock`` is what waits (pacing, rate limits): real time unless
    a test passes one that only pretends. Introduced in 04_multimodal_generation.
    """

    pins_provider = True  # provider= and model= ask exactly that provider and model

    def __init__(
        self,
        providers: str | Sequence[str] | None = None,
        timeout: float | None = None,
        verbose: bool = False,
        max_side: int = MAX_SIDE,
        max_images: int = MAX_IMAGES,
        clock: Clock | None = None,
    ) -> None:
        self._names = [p.name for p in parse_provider_names(providers)] if providers is not None else None
        self._timeout = None if timeout is None else config.llm_timeout(timeout)
        self.verbose = verbose
        self.max_side = max_side
        self.max_images = max_images
        self.clock = clock or Clock()  # what waits (pacing, backoff); tests pass one that only pretends
        self._pacer = Pacer(self.clock)

    def __repr__(self) -> str:
        # the arguments only: the environment is read (and may be fixed) at call time
        return f"Cascade(providers={self._names!r}, timeout={self._timeout!r}, verbose={self.verbose!r})"

    def order(self) -> list[Provider]:
        """The providers to try, in order: ``COURSE_OFFLINE`` > ``providers=`` > ``COURSE_LLM_PROVIDERS``."""
        if config.offline():
            return [by_name("offline")]
        if self._names is not None:
            return [by_name(name) for name in self._names]
        configured = config.llm_providers()
        if configured:
            return parse_provider_names(configured, "COURSE_LLM_PROVIDERS")
        return list(PROVIDERS)

    def _chosen(self) -> bool:
        """Whether the providers were named (``providers=`` or ``COURSE_LLM_PROVIDERS``), not the default list."""
        return self._names is not None or config.llm_providers() is not None

    def _unavailable(
        self,
        provider: Provider,
        model: str | None,
        n_images: int,
        vision: bool,
        chosen: bool = False,
        probe: bool = True,
    ) -> str | None:
        """Why ``provider`` is skipped for this call, or None when it can be asked.

        ``chosen``: the providers were named, so a local model runs even without a GPU.
        ``probe=False`` leaves out the one check that costs a request (is a local Ollama there?).
        """
        if provider.protocol == "offline":
            return None
        if provider.protocol == "local" and not chosen and not cuda_available():
            return "no CUDA GPU: on a CPU it is slow, so it runs only when named (COURSE_LLM_PROVIDERS=local,offline)"
        key = find_key(provider)
        if provider.key_envs and key is None:
            return f"{provider.key_envs[0]} not set"
        if key is not None and key_problem(*key):
            return key_problem(*key)
        if model is None:
            return f"no vision model (set {provider.env_prefix}_VISION_MODEL)"
        if vision and provider.max_images is not None and n_images > provider.max_images:
            return f"takes at most {provider.max_images} images per request ({n_images} given)"
        if endpoint_problem(provider):
            return endpoint_problem(provider)
        try:
            config.provider_rpm(provider.env_prefix)
        except CourseError as error:  # a bad <PREFIX>_RPM: this provider is misconfigured, the others are not
            return str(error).rstrip(".")
        if provider.local and probe:
            return probe_local_ollama(model)
        return None

    def list_providers(self) -> list[ProviderInfo]:
        """The providers in cascade order, each ``configured`` or ``skipped`` with the reason.

        Introduced in 04_multimodal_generation.
        """
        config.load_dotenv_file()
        infos = []
        for provider in self.order():
            text_model, vision_model = model_for(provider, False), model_for(provider, True)
            why = self._unavailable(provider, text_model, 0, False, self._chosen())
            if provider.protocol == "local" and not why:
                detail = f"{text_model}, in this process (loaded on first use)"
            elif provider.protocol == "offline":
                detail = "rule-based answerer: reads the catalog text, reads colour, shape and pattern from images, always answers"
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
        if config.offline():
            lines.append("  COURSE_OFFLINE=1: only the offline answerer is used.")
        elif all(info.state == "skipped" or info.name == "offline" for info in infos):
            lines.append(
                "  No LLM is configured: set one of the keys above (in the environment, a .env "
                "file or Colab secrets) to get real answers, or run a model here with no key: "
                "COURSE_LLM_PROVIDERS=local,offline (fast on a GPU, slow on a CPU)."
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
        config.load_dotenv_file()
        timeout = config.llm_timeout(self._timeout)
        order = self._order_for(pinned)
        models = {c.name: model if model and c.protocol != "offline" else model_for(c, vision) for c in order}
        n = len(images)
        chosen = pinned is not None or self._chosen()
        # the providers that may answer, by the checks that cost no request
        askable = [c for c in order if not self._unavailable(c, models[c.name], n, vision, chosen, probe=False)]
        cache = ResponseCache.from_settings()

        def stored_as(candidate: Provider) -> str:
            return cache_key(candidate.name, str(models[candidate.name]), system_prompt, prompt, images, max_tokens)

        if cache is not None:  # an answer already paid for, whichever provider gave it, costs no quota
            for candidate in askable:
                text = cache.get(stored_as(candidate)) if candidate.protocol != "offline" else None
                if text is not None:
                    attempt = Attempt(candidate.display_name, "cached", "the stored answer to the same request")
                    model_name = str(models[candidate.name])
                    return LLMResponse(text, candidate.display_name, model_name, (attempt,), cached=True)

        attempts: list[Attempt] = []
        for candidate in order:
            use_model = models[candidate.name]
            why = self._unavailable(candidate, use_model, n, vision, chosen)
            if why:
                attempts.append(Attempt(candidate.display_name, "skipped", scrub(why)))
                continue
            assert use_model is not None
            # pinned, or the last provider left: waiting out a rate limit beats failing
            last_resort = pinned is not None or candidate is askable[-1]
            try:
                text, usage = self._ask(
                    candidate, use_model, prompt, images, system_prompt, max_tokens, timeout, last_resort
                )
            except ProviderFailure as failure:
                self._report(candidate, failure, attempts)
                continue
            text = scrub(text)  # a server that echoes the key must not print it
            if len(text) > MAX_ANSWER_CHARS:
                text = text[:MAX_ANSWER_CHARS] + " […answer truncated]"
            if cache is not None and candidate.protocol != "offline":
                cache.put(stored_as(candidate), text)
            attempts.append(Attempt(candidate.display_name, "answered"))
            return LLMResponse(text, candidate.display_name, use_model, tuple(attempts), usage=usage)
        lines = "\n".join(f"  - {a.provider}: {a.outcome} ({a.reason})" for a in attempts)
        raise CourseError(
            f"No LLM provider answered:\n{lines}\nSet a key (see get_cascade().summary()) or add "
            "'offline' to COURSE_LLM_PROVIDERS for the rule-based answerer."
        )

    def _order_for(self, pinned: str | None) -> list[Provider]:
        """The providers to try: :meth:`order`, or the one ``pinned`` (by name or display name)."""
        if pinned is None:
            return self.order()
        chosen = parse_provider_names([pinned], "provider")[0]
        if config.offline() and chosen.protocol != "offline":
            raise CourseError(
                f"provider={pinned!r} was asked for, but COURSE_OFFLINE=1 allows only the offline answerer."
            )
        return [chosen]

    def _ask(
        self,
        provider: Provider,
        model: str,
        prompt: str,
        images: list[EncodedImage],
        system_prompt: str | None,
        max_tokens: int,
        timeout: float,
        last_resort: bool,
    ) -> tuple[str, Usage | None]:
        if provider.protocol == "offline":
            return OfflineAnswerer().generate_multimodal(prompt, images, system_prompt).text, None
        if provider.protocol == "local":
            return call_local(model, prompt, images, system_prompt, max_tokens, timeout)
        key = find_key(provider)
        call = call_gemini if provider.protocol == "gemini" else call_openai

        def ask() -> tuple[str, Usage | None]:
            self._pacer.wait_turn(provider)
            return call(provider, key, model, prompt, images, system_prompt, max_tokens, timeout)  # type: ignore[arg-type]

        if not last_resort:
            return ask()
        return patiently(ask, provider.display_name, config.llm_max_wait(), self.clock.sleep)

    def _report(self, provider: Provider, failure: ProviderFailure, attempts: list[Attempt]) -> None:
        reason = scrub(failure.reason)
        attempts.append(Attempt(provider.display_name, "failed", reason))
        if failure.rejected_key:
            key = find_key(provider)
            where = key[0] if key else provider.key_envs[0]
            print(
                f"Warning: {provider.display_name} rejected the key in {where}; check or replace it "
                f"({provider.key_page}).",
                file=sys.stderr,
            )
        if self.verbose:
            print(f"[LLM] {provider.display_name} did not answer: {reason}. Trying the next provider.")


def get_cascade(
    verbose: bool = True,
    providers: str | Sequence[str] | None = None,
    timeout: float | None = None,
    max_images: int = MAX_IMAGES,
) -> Cascade:
    """The course's LLM: a :class:`Cascade` over every provider, the offline answerer last.

    Parameters
    ----------
    verbose : print the provider summary now, and one line whenever a provider fails.
    providers : names in order (e.g. ``"gemini,openai,offline"``); default ``COURSE_LLM_PROVIDERS``
        or all of them.
    timeout : seconds per request; default ``COURSE_LLM_TIMEOUT`` or 60.
    max_images : the most images one request may carry (more raise a :class:`CourseError`).

    Introduced in 04_multimodal_generation.
    """
    forget_missing_secrets()  # a secret added since the last call is looked up again
    cascade = Cascade(providers=providers, timeout=timeout, verbose=verbose, max_images=max_images)
    if verbose:
        print(cascade.summary())
    return cascade
