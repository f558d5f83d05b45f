"""The LLM side of Image RAG: the interface, the offline answerer, the providers and their cascade.

One module per job: :mod:`.base` (interface and answer record), :mod:`.offline` (the rule-based
stand-in), :mod:`.seeing` (what it reads from a picture), :mod:`.providers` (the provider table), :mod:`.keys` (finding keys, keeping them out
of output), :mod:`.images` (images on the wire), :mod:`.deadline` (a whole request by its
timeout), :mod:`.openai_compat` and :mod:`.gemini` (the two wire protocols), :mod:`.local_vlm` (a
vision-language model in this process), :mod:`.cascade` (trying the providers in turn) and, for a
class on free tiers, :mod:`.cache` (answers already paid for), :mod:`.backoff` (waiting out a rate
limit) and :mod:`.pacing` (``<PREFIX>_RPM``).
"""

from .base import LLM, Attempt, LLMResponse, ProviderFailure, Usage, can_pin_provider
from .cascade import Cascade, get_cascade
from .gemini import call_gemini, gemini_config, gemini_parts, raw_gemini_call
from .images import EncodedImage, encode_image, encode_images
from .keys import colab_secret
from .local_vlm import LocalVLM, free_local_vlm
from .offline import OFFLINE_LABEL, OFFLINE_PROVIDER, OfflineAnswerer
from .openai_compat import openai_messages
from .providers import PROVIDER_NAMES, PROVIDERS, Provider, parse_provider_names
from .seeing import ATTRIBUTE_PROMPTS, AttributeReader, Seen, default_reader

__all__ = [
    "ATTRIBUTE_PROMPTS",
    "LLM",
    "OFFLINE_LABEL",
    "OFFLINE_PROVIDER",
    "PROVIDERS",
    "PROVIDER_NAMES",
    "Attempt",
    "AttributeReader",
    "Cascade",
    "EncodedImage",
    "LLMResponse",
    "LocalVLM",
    "OfflineAnswerer",
    "Provider",
    "ProviderFailure",
    "Seen",
    "Usage",
    "call_gemini",
    "can_pin_provider",
    "colab_secret",
    "default_reader",
    "encode_image",
    "encode_images",
    "free_local_vlm",
    "gemini_config",
    "gemini_parts",
    "get_cascade",
    "openai_messages",
    "parse_provider_names",
    "raw_gemini_call",
]
