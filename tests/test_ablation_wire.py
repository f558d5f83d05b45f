"""The evidence conditions on the wire: what a real provider receives under each one.

The real ``openai`` and ``google-genai`` SDKs send every request to local servers that speak the
providers' protocols (``llm_servers.py``). For each condition the request must carry images or
none, catalog rows or none, and the one system prompt, changed only in its evidence sentence.
"""

from __future__ import annotations

import base64

import pytest
from llm_servers import ServerPool

from course_utils.ablation import ablation_questions, first_per_type, run_ablation
from course_utils.catalog import default_catalog
from course_utils.llm import get_cascade
from course_utils.prompts import CONDITIONS, CONTEXT_CLOSE, CONTEXT_OPEN, EVIDENCE, system_prompt
from course_utils.rag import ALL_IMAGES_LIMIT, ImageRAG

SECRET = "sk-test-SECRET-ablation-0123456789"
PREFIX = {"openai": "OPENAI", "gemini": "GEMINI"}
IMAGES = {"none": 0, "metadata": 0, "images": 3, "both": 3, "all-images": 8, "random": 3}
ROWS = {"none": False, "metadata": True, "images": False, "both": True, "all-images": False, "random": True}


@pytest.fixture(autouse=True)
def clean_env(clean_llm_env):
    """Every test here starts from a clean LLM environment (see ``llm_servers.clean_llm_env``)."""


@pytest.fixture
def provider(monkeypatch, request):
    """A fake provider of the protocol in ``request.param``, the only one the cascade may use."""
    protocol = request.param
    with ServerPool() as start:
        server = start(protocol, text="Widget A is red.")
        monkeypatch.setenv(f"{PREFIX[protocol]}_API_KEY", SECRET)
        monkeypatch.setenv(f"{PREFIX[protocol]}_BASE_URL", server.base_url)
        monkeypatch.setenv("COURSE_LLM_PROVIDERS", protocol)
        yield protocol, server


def _read(protocol: str, body: dict) -> tuple[str | None, str, int]:
    """(system prompt, user text, number of images) of one request body."""
    if protocol == "openai":
        messages = body["messages"]
        system = messages[0]["content"] if messages[0]["role"] == "system" else None
        content = messages[-1]["content"]
        if isinstance(content, str):
            return system, content, 0
        text = "".join(block["text"] for block in content if block["type"] == "text")
        return system, text, sum(block["type"] == "image_url" for block in content)
    system = (body.get("systemInstruction") or {}).get("parts", [{}])[0].get("text")
    parts = body["contents"][0]["parts"]
    text = "".join(part.get("text") or "" for part in parts)
    return system, text, sum(bool(part.get("inlineData") or part.get("inline_data")) for part in parts)


@pytest.mark.parametrize("provider", ["openai", "gemini"], indirect=True)
def test_each_condition_reaches_the_provider_with_its_evidence(provider, tiny_index, tiny_embedder):
    protocol, server = provider
    rag = ImageRAG(tiny_index, tiny_embedder, get_cascade(verbose=False, max_images=ALL_IMAGES_LIMIT), metadata="shop")
    systems = {}
    for condition in CONDITIONS:
        result = rag.ask("What red products do you have?", condition, k=3)
        system, text, n_images = _read(protocol, server.chat_requests[-1].body)
        systems[condition] = system
        assert system == system_prompt(condition), condition
        assert n_images == IMAGES[condition] == result.sent.images, condition
        assert (CONTEXT_OPEN in text) is (condition != "none"), condition
        inside = text[text.find(CONTEXT_OPEN) : text.find(CONTEXT_CLOSE)] if CONTEXT_OPEN in text else ""
        assert ("price: $" in inside) is ROWS[condition], condition
        assert "color:" not in inside, "shop rows never describe the look"
        assert text.rstrip().endswith("Question: What red products do you have?")
        assert result.provider == {"openai": "OpenAI", "gemini": "Gemini"}[protocol]
    stems = {s.replace(EVIDENCE[c], "") for c, s in systems.items()}
    assert len(stems) == 1, "one system prompt; only the evidence sentence changes"


@pytest.mark.parametrize("provider", ["openai", "gemini"], indirect=True)
def test_the_images_on_the_wire_are_the_files_of_the_condition(provider, tiny_index, tiny_embedder):
    protocol, server = provider
    rag = ImageRAG(tiny_index, tiny_embedder, get_cascade(verbose=False))
    result = rag.ask("striped products", "images", k=2)
    body = server.chat_requests[-1].body
    if protocol == "openai":
        blocks = [b for b in body["messages"][-1]["content"] if b["type"] == "image_url"]
        sent = [base64.b64decode(b["image_url"]["url"].split(",", 1)[1]) for b in blocks]
    else:
        parts = [p.get("inlineData") or p.get("inline_data") for p in body["contents"][0]["parts"]]
        sent = [base64.urlsafe_b64decode(p["data"]) for p in parts if p]
    assert sent == [open(h.path, "rb").read() for h in result.hits]


@pytest.mark.parametrize(
    "provider, source, tokens",
    [("gemini", "reported", 3 * 258), ("openai", "estimated", 3 * 85)],
    indirect=["provider"],
)
def test_image_tokens_come_from_the_usage_the_provider_reports(provider, tiny_index, tiny_embedder, source, tokens):
    """Gemini counts image tokens apart; an OpenAI-compatible API gives one prompt count to estimate from."""
    rag = ImageRAG(tiny_index, tiny_embedder, get_cascade(verbose=False))
    sent = rag.ask("red?", "both", k=3).sent
    assert (sent.image_tokens, sent.image_tokens_source) == (tokens, source)
    assert sent.prompt_tokens is not None
    blind = rag.ask("red?", "none").sent
    assert (blind.images, blind.image_tokens, blind.image_tokens_source) == (0, 0, "no images")


@pytest.mark.parametrize("provider", ["openai"], indirect=True)
def test_the_ablation_runs_against_a_provider_and_pins_it(provider, tiny_index, tiny_embedder, monkeypatch):
    protocol, server = provider
    monkeypatch.setenv("COURSE_LLM_CACHE", "0")  # every condition must reach the server, none from the cache
    rag = ImageRAG(tiny_index, tiny_embedder, get_cascade(verbose=False, max_images=ALL_IMAGES_LIMIT), metadata="shop")
    questions = first_per_type(ablation_questions(default_catalog()), 1)
    report = run_ablation(rag, questions)
    assert report["llm"] == [{"provider": "OpenAI", "model": report["llm"][0]["model"]}]
    assert len(server.chat_requests) == len(questions) * len(CONDITIONS)
    models = {request.body["model"] for request in server.chat_requests}
    assert len(models) == 1, "every condition is asked of the model that answered first"
    by = {c["condition"]: c for c in report["conditions"]}
    assert by["both"]["sent"]["image_tokens_source"] == "estimated"
    assert "seeing" not in report, "the pictures were read by the provider, not by the offline answerer"
