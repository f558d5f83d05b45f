"""The LLM cascade against local servers that speak the OpenAI and Gemini wire protocols.

The real ``openai`` and ``google-genai`` SDKs send every request here to 127.0.0.1 (see
``llm_servers.py``); no test reaches a real provider, and the local-Ollama probe is pointed at a
closed port unless a test starts a fake Ollama.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from llm_servers import FakeLLMServer, ServerPool, closed_port
from PIL import Image

from course_utils.errors import CourseError
from course_utils.llm import (
    PROVIDER_NAMES,
    PROVIDERS,
    ProviderFailure,
    gemini,
    get_cascade,
    keys,
    openai_compat,
    providers,
    raw_gemini_call,
)
from course_utils.llm import cascade as cascade_module
from course_utils.llm.images import MAX_IMAGES, detect_mime, encode_image, encode_images
from course_utils.prompts import SYSTEM_PROMPT

SECRET = "sk-test-SECRET-1234567890abcdef"
PROMPT = (
    "Answer the question using only the catalog entries and product images below.\n"
    "<catalog_context>\n[1] name: Widget A | color: red | shape: circle | pattern: solid | price: $12.99 | "
    "category: toys\n</catalog_context>\n\nQuestion: What red products do you have?"
)
PREFIX = {"gemini": "GEMINI", "openai": "OPENAI", "groq": "GROQ", "ollama": "OLLAMA"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No key, endpoint or course setting leaks in from the machine; .env files and Colab secrets
    a test loads leave with it; the local-Ollama probe finds a closed port."""
    saved = dict(os.environ)
    names = [*providers.ALL_KEY_ENVS, "COURSE_LLM_PROVIDERS", "COURSE_LLM_TIMEOUT", "COURSE_OFFLINE"]
    names += ["GOOGLE_GENAI_USE_VERTEXAI", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"]
    names += [f"{p.env_prefix}_{suffix}" for p in PROVIDERS for suffix in ("BASE_URL", "MODEL", "VISION_MODEL")]
    for name in names:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.chdir(tmp_path)
    keys.forget_missing_secrets()
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def llm_server():
    """A factory: ``llm_server("openai")`` starts a fake provider; all stop at teardown."""
    with ServerPool() as start:
        yield start


def use(monkeypatch, name: str, server: FakeLLMServer, key: str = SECRET) -> None:
    """Point provider ``name`` at ``server`` with ``key``."""
    prefix = PREFIX[name]
    monkeypatch.setenv(f"{prefix}_API_KEY", key)
    monkeypatch.setenv(f"{prefix}_BASE_URL", server.base_url)


def png_bytes(color, size=(40, 30), fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def ranked_images(tmp_path):
    """Three small images in rank order: a PNG, a JPEG misnamed .png, a WebP."""
    paths = [tmp_path / "rank1.png", tmp_path / "rank2.png", tmp_path / "rank3.webp"]
    paths[0].write_bytes(png_bytes("red"))
    paths[1].write_bytes(png_bytes("green", fmt="JPEG"))
    paths[2].write_bytes(png_bytes("blue", fmt="WEBP"))
    return paths


def openai_images(request) -> list[tuple[str, bytes]]:
    """(MIME type, bytes) of each image_url block of the user message, in order."""
    content = request.body["messages"][-1]["content"]
    found = []
    for block in content:
        if block["type"] == "image_url":
            header, data = block["image_url"]["url"].split(",", 1)
            assert header.startswith("data:") and header.endswith(";base64")
            found.append((header[5:-7], base64.b64decode(data)))
    return found


def gemini_images(request) -> list[tuple[str, bytes]]:
    parts = request.body["contents"][0]["parts"]
    inline = [p.get("inlineData") or p.get("inline_data") for p in parts]
    # the SDK sends URL-safe base64, which the API accepts as well as the standard alphabet
    return [(d.get("mimeType") or d.get("mime_type"), base64.urlsafe_b64decode(d["data"])) for d in inline if d]


# -- images ---------------------------------------------------------------------------------------


def test_mime_detected_from_content_not_name():
    assert detect_mime(png_bytes("red")) == "image/png"
    assert detect_mime(png_bytes("red", fmt="JPEG")) == "image/jpeg"
    assert detect_mime(png_bytes("red", fmt="WEBP")) == "image/webp"
    assert detect_mime(png_bytes("red", fmt="GIF")) == "image/gif"
    assert detect_mime(png_bytes("red", fmt="BMP")) is None
    assert detect_mime(b"") is None


def test_small_images_keep_their_bytes_and_other_formats_become_png(ranked_images, tmp_path):
    encoded = encode_images(ranked_images)
    assert [e.mime_type for e in encoded] == ["image/png", "image/jpeg", "image/webp"]
    assert [e.data for e in encoded] == [p.read_bytes() for p in ranked_images]
    bmp = tmp_path / "old.bmp"
    bmp.write_bytes(png_bytes("red", fmt="BMP"))
    assert encode_image(bmp).mime_type == "image/png"
    from_pil = encode_image(Image.new("RGBA", (10, 10), (0, 0, 255, 128)))
    assert from_pil.mime_type == "image/png" and Image.open(io.BytesIO(from_pil.data)).size == (10, 10)
    assert encode_image(png_bytes("red")).data == png_bytes("red")  # bytes pass through
    assert "data=" not in repr(encoded[0])  # a record that prints without megabytes of bytes


def test_large_images_are_downscaled(tmp_path):
    big_png, big_jpg = tmp_path / "big.png", tmp_path / "big.jpg"
    big_png.write_bytes(png_bytes("red", size=(2400, 1200)))
    big_jpg.write_bytes(png_bytes("red", size=(1000, 3000), fmt="JPEG"))
    png, jpg = encode_images([big_png, big_jpg])
    assert (png.mime_type, png.size) == ("image/png", (1024, 512))
    assert (jpg.mime_type, jpg.size) == ("image/jpeg", (341, 1024))
    assert Image.open(io.BytesIO(png.data)).size == (1024, 512)
    assert encode_image(big_png, max_side=200).size == (200, 100)


def test_unreadable_images_and_too_many_are_course_errors(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(CourseError, match="notes.png"):
        encode_image(text)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(CourseError, match="empty.png: empty file"):
        encode_image(tmp_path / "empty.png")
    with pytest.raises(CourseError, match="not found"):
        encode_image(tmp_path / "missing.png")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(png_bytes("red", size=(300, 300))[:200])
    with pytest.raises(CourseError, match="cut.png"):
        encode_image(truncated)
    with pytest.raises(CourseError, match="a dict is not an image"):
        encode_image({"path": "x"})
    with pytest.raises(CourseError, match=f"9 images is more than the {MAX_IMAGES}"):
        encode_images([png_bytes("red")] * 9)


# -- the wire protocols ---------------------------------------------------------------------------


def test_openai_request_carries_system_prompt_text_and_images_in_rank_order(monkeypatch, llm_server, ranked_images):
    server = llm_server("openai", text="Widget A is red.")
    use(monkeypatch, "openai", server)
    monkeypatch.setenv("COURSE_LLM_PROVIDERS", "openai")
    monkeypatch.setenv("OPENAI_VISION_MODEL", "vision-test-model")
    response = get_cascade(verbose=False).generate_multimodal(PROMPT, ranked_images, system_prompt=SYSTEM_PROMPT)
    assert (response.text, response.provider, response.model) == ("Widget A is red.", "OpenAI", "vision-test-model")
    [request] = server.requests
    assert request.path == "/v1/chat/completions" and request.key == SECRET
    body = request.body
    assert body["model"] == "vision-test-model" and body["max_completion_tokens"] == 1024
    assert body["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    content = body["messages"][1]["content"]
    assert content[0] == {"type": "text", "text": PROMPT}
    assert openai_images(request) == [
        ("image/png", ranked_images[0].read_bytes()),
        ("image/jpeg", ranked_images[1].read_bytes()),
        ("image/webp", ranked_images[2].read_bytes()),
    ]


def test_gemini_request_carries_inline_parts_in_rank_order_and_no_thinking(monkeypatch, llm_server, ranked_images):
    server = llm_server("gemini", text="Widget A is red.")
    use(monkeypatch, "gemini", server)
    monkeypatch.setenv("COURSE_LLM_PROVIDERS", "gemini")
    response = get_cascade(verbose=False).generate_multimodal(
        PROMPT, ranked_images, system_prompt=SYSTEM_PROMPT, max_tokens=300
    )
    assert (response.text, response.provider, response.model) == ("Widget A is red.", "Gemini", "gemini-2.5-flash")
    [request] = server.requests
    assert request.path.endswith("/models/gemini-2.5-flash:generateContent") and request.key == SECRET
    body = request.body
    assert body["contents"][0]["parts"][0] == {"text": PROMPT}
    assert gemini_images(request) == [
        ("image/png", ranked_images[0].read_bytes()),
        ("image/jpeg", ranked_images[1].read_bytes()),
        ("image/webp", ranked_images[2].read_bytes()),
    ]
    assert body["systemInstruction"]["parts"][0]["text"] == SYSTEM_PROMPT
    config = body["generationConfig"]
    assert config["maxOutputTokens"] == 300
    thinking = config["thinkingConfig"]
    assert thinking.get("thinkingBudget", thinking.get("thinking_budget")) == 0


def test_text_generate_uses_the_text_model_and_plain_content(monkeypatch, llm_server):
    openai, gemini = llm_server("openai"), llm_server("gemini")
    use(monkeypatch, "openai", openai)
    use(monkeypatch, "gemini", gemini)
    monkeypatch.setenv("OPENAI_MODEL", "text-test-model")
    monkeypatch.setenv("GEMINI_MODEL", "gemini-2.5-pro")
    cascade = get_cascade(verbose=False, providers="openai,gemini")
    assert cascade.generate("Hello?").model == "text-test-model"
    assert openai.requests[0].body["messages"] == [{"role": "user", "content": "Hello?"}]
    answer = cascade.generate("Hello?", provider="gemini")
    assert (answer.provider, answer.model) == ("Gemini", "gemini-2.5-pro")
    assert "thinkingConfig" not in gemini.requests[0].body["generationConfig"]  # Pro cannot switch it off


# -- falling through ------------------------------------------------------------------------------

FAILURES = [
    ("status", {"status": 429}, "rate limited or out of quota (HTTP 429)"),
    ("status", {"status": 503}, "server error (HTTP 503)"),
    ("status", {"status": 401}, "key rejected (HTTP 401"),
    ("status", {"status": 404}, "not found (HTTP 404)"),
    ("empty", {}, "empty answer"),
    ("malformed", {}, "malformed answer"),
    ("drop", {}, "connection failed"),
]


@pytest.mark.parametrize("first", ["gemini", "openai"])
@pytest.mark.parametrize("mode, options, reason", FAILURES, ids=[f"{m}-{o.get('status', '')}" for m, o, _ in FAILURES])
def test_a_failing_provider_hands_over_to_the_next(
    monkeypatch, llm_server, ranked_images, first, mode, options, reason
):
    second = "openai" if first == "gemini" else "gemini"
    failing, answering = llm_server(first).behave(mode, **options), llm_server(second, text="second answers")
    use(monkeypatch, first, failing)
    use(monkeypatch, second, answering)
    monkeypatch.setenv("COURSE_LLM_PROVIDERS", f"{first},{second}")
    response = get_cascade(verbose=False).generate_multimodal(PROMPT, ranked_images)
    assert response.text == "second answers"
    assert [(a.provider, a.outcome) for a in response.attempts] == [
        ("Gemini" if first == "gemini" else "OpenAI", "failed"),
        ("OpenAI" if first == "gemini" else "Gemini", "answered"),
    ]
    assert reason in response.attempts[0].reason
    assert len(failing.requests) == 1  # the SDK did not retry by itself


def test_timeouts_move_on_and_the_offline_answerer_answers_last(monkeypatch, llm_server, capsys):
    gemini, openai = llm_server("gemini").behave("hang", delay=5), llm_server("openai").behave("hang", delay=5)
    use(monkeypatch, "gemini", gemini)
    use(monkeypatch, "openai", openai)
    monkeypatch.setenv("COURSE_LLM_TIMEOUT", "0.4")
    monkeypatch.setenv("COURSE_LLM_PROVIDERS", "gemini,openai,offline")
    cascade = get_cascade(verbose=True)
    capsys.readouterr()
    response = cascade.generate(PROMPT)
    assert response.provider == "offline" and "Widget A" in response.text
    assert [a.reason for a in response.attempts[:2]] == ["timed out after 0.4 s"] * 2
    out = capsys.readouterr().out
    assert "Gemini did not answer: timed out" in out and "OpenAI did not answer: timed out" in out


def test_a_rejected_key_warns_with_the_env_var_and_never_the_key(monkeypatch, llm_server, capsys):
    gemini = llm_server("gemini").behave(
        "status", status=400, message="API key not valid: {key}", details=[{"reason": "API_KEY_INVALID"}]
    )
    openai = llm_server("openai").behave("status", status=401, message="Incorrect API key provided: {key}")
    use(monkeypatch, "gemini", gemini)
    use(monkeypatch, "openai", openai)
    monkeypatch.setenv("COURSE_LLM_PROVIDERS", "gemini,openai")
    cascade = get_cascade(verbose=True)
    with pytest.raises(CourseError) as raised:
        cascade.generate(PROMPT)
    captured = capsys.readouterr()
    assert "Gemini rejected the key in GEMINI_API_KEY" in captured.err
    assert "OpenAI rejected the key in OPENAI_API_KEY" in captured.err
    message = str(raised.value)
    assert "No LLM provider answered" in message and "Gemini: failed (key rejected" in message
    assert "Incorrect API key provided: ***" in message  # the server's words, the key scrubbed
    shown = [captured.out, captured.err, message, repr(raised.value), repr(cascade), cascade.summary()]
    shown += [repr(info) for info in cascade.list_providers()]
    assert all(SECRET not in text for text in shown)


def test_no_key_in_attempts_or_reprs_of_an_answer(monkeypatch, llm_server, capsys):
    failing = llm_server("openai").behave("status", status=429, message="quota exceeded for key {key}")
    use(monkeypatch, "openai", failing)
    monkeypatch.setenv("COURSE_LLM_PROVIDERS", "openai,offline")
    response = get_cascade(verbose=True).generate(PROMPT)
    assert response.attempts[0].reason.endswith("quota exceeded for key ***")
    assert SECRET not in repr(response) and SECRET not in "".join(capsys.readouterr())


def test_every_provider_failing_without_offline_raises_one_error(monkeypatch, llm_server):
    gemini, openai = llm_server("gemini").behave("status", status=503), llm_server("openai").behave("empty")
    use(monkeypatch, "gemini", gemini)
    use(monkeypatch, "openai", openai)
    with pytest.raises(CourseError) as raised:
        get_cascade(verbose=False, providers=["gemini", "groq", "openai"]).generate(PROMPT)
    message = str(raised.value)
    assert "Gemini: failed (server error (HTTP 503)" in message
    assert "Groq: skipped (GROQ_API_KEY not set)" in message
    assert "OpenAI: failed (empty answer (finish_reason=length))" in message


def test_huge_answers_are_truncated(monkeypatch, llm_server):
    server = llm_server("openai").behave("huge", size=60_000)
    use(monkeypatch, "openai", server)
    response = get_cascade(verbose=False, providers="openai").generate(PROMPT)
    assert len(response.text) < cascade_module.MAX_ANSWER_CHARS + 40 and response.text.endswith("truncated]")


def test_programming_errors_are_not_swallowed(monkeypatch, llm_server):
    use(monkeypatch, "openai", llm_server("openai"))

    def broken(completion):
        raise TypeError("a bug in our code")

    monkeypatch.setattr(openai_compat, "_answer_text", broken)
    with pytest.raises(TypeError, match="a bug in our code"):
        get_cascade(verbose=False, providers="openai,offline").generate(PROMPT)


def test_a_request_the_sdk_cannot_build_is_a_bug_not_a_failing_provider(monkeypatch, llm_server, capsys):
    """A config field the installed google-genai lacks (Colab's is a major behind) must fail loudly,
    not pass as Gemini's "malformed answer" while the cascade quietly moves on."""
    import pydantic
    from google.genai import types

    server = llm_server("gemini")
    use(monkeypatch, "gemini", server)

    def config_with_an_unknown_field(*args, **kwargs):
        return types.GenerateContentConfig(not_a_field_in_any_sdk=True)

    monkeypatch.setattr(gemini, "gemini_config", config_with_an_unknown_field)
    with pytest.raises(pydantic.ValidationError, match="not_a_field_in_any_sdk"):
        get_cascade(verbose=False, providers="gemini,offline").generate(PROMPT)
    with pytest.raises(pydantic.ValidationError, match="not_a_field_in_any_sdk"):
        raw_gemini_call(PROMPT, [])
    assert server.requests == []


def test_answer_text_is_read_defensively():
    text = openai_compat._answer_text
    choice = {"message": {"content": [{"type": "text", "text": "Widget A"}, {"type": "text", "text": " is red."}]}}
    assert text({"choices": [choice]}) == "Widget A is red."
    assert text({"choices": [{"message": {"content": "<think>hmm, red?</think>\n Widget A."}}]}) == "Widget A."
    for shape, reason in [("oops", "malformed"), ({"choices": "x"}, "malformed"), ({"choices": []}, "no choices")]:
        with pytest.raises(ProviderFailure, match=reason):
            text(shape)
    with pytest.raises(ProviderFailure, match="content is not text"):
        text({"choices": [{"message": {"content": 42}}]})


# -- order, subsets and pinning -------------------------------------------------------------------


def test_default_order_with_nothing_configured_ends_offline(monkeypatch):
    monkeypatch.setattr(cascade_module, "cuda_available", lambda: False)  # the local model: GPU only by default
    response = get_cascade(verbose=False).generate_multimodal(PROMPT, [png_bytes("red")])
    assert [a.provider for a in response.attempts] == [p.display_name for p in PROVIDERS]
    assert [a.outcome for a in response.attempts] == ["skipped"] * (len(PROVIDERS) - 1) + ["answered"]
    assert response.attempts[0].reason == "GEMINI_API_KEY not set"
    assert "no server answers at http://127.0.0.1:" in response.attempts[-3].reason
    assert response.attempts[-2].reason.startswith("no CUDA GPU")
    assert (response.provider, response.model) == ("offline", "rule-based") and "Widget A" in response.text


def test_course_llm_providers_sets_order_and_subset(monkeypatch, llm_server):
    gemini, openai = llm_server("gemini", text="from gemini"), llm_server("openai", text="from openai")
    use(monkeypatch, "gemini", gemini)
    use(monkeypatch, "openai", openai)
    monkeypatch.setenv("COURSE_LLM_PROVIDERS", " OpenAI , gemini,offline")
    cascade = get_cascade(verbose=False)
    response = cascade.generate(PROMPT)
    assert response.text == "from openai" and [a.provider for a in response.attempts] == ["OpenAI"]
    assert gemini.requests == []
    assert [info.name for info in cascade.list_providers()] == ["openai", "gemini", "offline"]
    assert get_cascade(verbose=False, providers=["gemini"]).generate(PROMPT).text == "from gemini"


def test_unknown_provider_names_list_the_valid_ones(monkeypatch):
    monkeypatch.setenv("COURSE_LLM_PROVIDERS", "gemini,chatgpt")
    with pytest.raises(CourseError, match="unknown LLM provider 'chatgpt'; valid names are gemini, ollama"):
        get_cascade(verbose=False).generate(PROMPT)
    with pytest.raises(CourseError, match="valid names are .*ollama-local, local, offline"):
        get_cascade(verbose=False, providers="nope")
    with pytest.raises(CourseError, match="COURSE_LLM_TIMEOUT"):
        monkeypatch.setenv("COURSE_LLM_PROVIDERS", "offline")
        monkeypatch.setenv("COURSE_LLM_TIMEOUT", "soon")
        get_cascade(verbose=False).generate(PROMPT)


def test_course_offline_means_the_offline_answerer_only(monkeypatch, llm_server):
    server = llm_server("openai")
    use(monkeypatch, "openai", server)
    monkeypatch.setenv("COURSE_LLM_PROVIDERS", "openai")
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    cascade = get_cascade(verbose=False)
    assert cascade.generate(PROMPT).provider == "offline" and server.requests == []
    assert "COURSE_OFFLINE=1" in cascade.summary()
    with pytest.raises(CourseError, match="COURSE_OFFLINE=1"):
        cascade.generate(PROMPT, provider="OpenAI")


def test_pinning_a_provider_and_model_for_a_fair_comparison(monkeypatch, llm_server):
    gemini, openai = llm_server("gemini"), llm_server("openai", text="pinned")
    use(monkeypatch, "gemini", gemini)
    use(monkeypatch, "openai", openai)
    cascade = get_cascade(verbose=False)
    response = cascade.generate(PROMPT, provider="OpenAI", model="the-same-model")
    assert (response.text, response.provider, response.model) == ("pinned", "OpenAI", "the-same-model")
    assert gemini.requests == [] and openai.requests[0].body["model"] == "the-same-model"
    assert cascade.generate(PROMPT, provider="offline").provider == "offline"
    with pytest.raises(CourseError, match="Groq: skipped \\(GROQ_API_KEY not set\\)"):
        cascade.generate(PROMPT, provider="groq")


def test_providers_without_vision_or_with_an_image_limit_are_skipped(monkeypatch, llm_server):
    groq, openai = llm_server("openai", text="groq"), llm_server("openai", text="openai")
    use(monkeypatch, "groq", groq)
    use(monkeypatch, "openai", openai)
    monkeypatch.setenv("OPENAI_VISION_MODEL", "")
    cascade = get_cascade(verbose=False, providers="groq,openai,offline")
    response = cascade.generate_multimodal(PROMPT, [png_bytes("red")] * 6)
    assert [(a.provider, a.outcome) for a in response.attempts] == [
        ("Groq", "skipped"), ("OpenAI", "skipped"), ("offline", "answered"),
    ]  # fmt: skip
    assert "at most 5 images" in response.attempts[0].reason
    assert response.attempts[1].reason == "no vision model (set OPENAI_VISION_MODEL)"
    assert cascade.generate_multimodal(PROMPT, [png_bytes("red")] * 5).provider == "Groq"
    assert cascade.generate(PROMPT, provider="openai").text == "openai"  # text still works
    with pytest.raises(CourseError, match="9 images"):
        cascade.generate_multimodal(PROMPT, [png_bytes("red")] * 9)
    assert len(groq.requests) == 1 and len(openai.requests) == 1


def test_a_local_ollama_is_probed_only_when_reached_and_used(monkeypatch, llm_server):
    ollama = llm_server("openai", text="local answer", models=("gemma3:4b", "llama3.2:latest"))
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{ollama.port}")  # as `ollama serve` takes it
    use(monkeypatch, "openai", llm_server("openai"))
    assert get_cascade(verbose=False, providers="openai,ollama-local").generate(PROMPT).provider == "OpenAI"
    assert ollama.requests == []  # OpenAI answered first: no probe
    cascade = get_cascade(verbose=False, providers="ollama-local,offline")
    response = cascade.generate_multimodal(PROMPT, [png_bytes("red")])
    assert (response.text, response.provider, response.model) == ("local answer", "Ollama (local)", "gemma3:4b")
    assert [(r.method, r.path) for r in ollama.requests] == [("GET", "/api/tags"), ("POST", "/v1/chat/completions")]
    assert cascade.generate(PROMPT, model="llama3.2").provider == "Ollama (local)"
    monkeypatch.setenv("OLLAMA_LOCAL_MODEL", "mistral")
    response = cascade.generate(PROMPT)
    assert response.provider == "offline" and "ollama pull mistral" in response.attempts[0].reason


# -- configuration: summary, .env, Colab ----------------------------------------------------------


def test_summary_lists_state_and_the_env_var_to_set(monkeypatch, capsys):
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    cascade = get_cascade(verbose=True)
    printed = capsys.readouterr().out
    assert printed.strip() == cascade.summary()
    infos = cascade.list_providers()
    assert [info.name for info in infos] == list(PROVIDER_NAMES)
    assert (infos[0].state, infos[0].detail) == ("configured", "text: gemini-2.5-flash, vision: gemini-2.5-flash")
    assert infos[2].state == "skipped" and infos[2].detail.startswith("GROQ_API_KEY not set")
    assert infos[-1].state == "configured"
    for env in ("OLLAMA_API_KEY", "GROQ_API_KEY", "HF_TOKEN", "COHERE_API_KEY", "OPENROUTER_API_KEY", "XAI_API_KEY"):
        assert env in printed
    assert SECRET not in printed and SECRET not in repr(cascade)
    get_cascade(verbose=False)
    assert capsys.readouterr().out == ""


def test_dotenv_file_is_loaded_from_a_parent_and_never_overrides(monkeypatch, llm_server, tmp_path):
    server = llm_server("openai")
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / ".env").write_text(
        f"OPENAI_API_KEY=from-dotenv-key-123\nOPENAI_BASE_URL={server.base_url}\n"
        "OPENAI_MODEL=dotenv-model\nCOURSE_LLM_PROVIDERS=openai\n"
    )
    monkeypatch.setenv("OPENAI_MODEL", "already-set-model")
    monkeypatch.chdir(project / "notebooks")
    response = get_cascade(verbose=False).generate(PROMPT)
    assert response.provider == "OpenAI" and response.model == "already-set-model"
    assert server.requests[0].key == "from-dotenv-key-123"


def fake_colab(monkeypatch, secrets: dict, error: type[Exception] | None = None) -> list[str]:
    """Insert a ``google.colab`` module whose ``userdata.get`` serves ``secrets`` (or raises)."""
    asked: list[str] = []

    class SecretNotFoundError(Exception):
        pass

    def get(name):
        asked.append(name)
        if error is not None:
            raise error(name)
        if name not in secrets:
            raise SecretNotFoundError(name)
        return secrets[name]

    userdata = types.ModuleType("google.colab.userdata")
    userdata.get = get
    colab = types.ModuleType("google.colab")
    colab.userdata = userdata
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.userdata", userdata)
    return asked


def test_colab_secrets_supply_keys(monkeypatch, llm_server):
    server = llm_server("openai", text="via colab")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    fake_colab(monkeypatch, {"OPENAI_API_KEY": "colab-secret-key-987"})
    cascade = get_cascade(verbose=False, providers="openai")
    assert cascade.generate(PROMPT).text == "via colab"
    assert server.requests[0].key == "colab-secret-key-987"
    assert "colab-secret-key-987" not in cascade.summary() + repr(cascade)


class NotebookAccessError(Exception):
    pass


class TimeoutException(Exception):
    pass


@pytest.mark.parametrize("error", [None, NotebookAccessError, TimeoutException, RuntimeError])
def test_colab_secret_errors_mean_not_available(monkeypatch, error):
    asked = fake_colab(monkeypatch, {}, error)
    cascade = get_cascade(verbose=False, providers="openai,offline")
    for _ in range(2):
        response = cascade.generate(PROMPT)
        assert response.provider == "offline" and response.attempts[0].reason == "OPENAI_API_KEY not set"
    assert asked == ["OPENAI_API_KEY"]  # a missing secret is asked for once, not on every call
    get_cascade(verbose=False, providers="openai,offline").generate(PROMPT)
    assert asked == ["OPENAI_API_KEY"] * 2  # ... until a new cascade is made


# -- the raw Gemini call --------------------------------------------------------------------------


def test_raw_gemini_call_skips_without_a_key(capsys):
    assert raw_gemini_call(PROMPT, [png_bytes("red")]) is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "Skipped the raw Gemini call: GEMINI_API_KEY is not set." in out


def test_raw_gemini_call_sends_the_parts(monkeypatch, llm_server, capsys):
    server = llm_server("gemini", text="raw answer")
    use(monkeypatch, "gemini", server)
    image = png_bytes("red")
    assert raw_gemini_call(PROMPT, [image], model="gemini-2.5-flash-lite") == "raw answer"
    assert server.requests[0].path.endswith("/models/gemini-2.5-flash-lite:generateContent")
    assert gemini_images(server.requests[0]) == [("image/png", image)]
    server.behave("status", status=429)
    assert raw_gemini_call(PROMPT, [image]) is None
    assert "The raw Gemini call failed: rate limited" in capsys.readouterr().out


# -- end to end: the command line asks a local server ---------------------------------------------


def sent_images(server: FakeLLMServer) -> list[tuple[str, bytes]]:
    [request] = server.chat_requests
    return openai_images(request) if server.protocol == "openai" else gemini_images(request)


def cli_env(tiny_clip_dir, tmp_path) -> dict[str, str]:
    """The CLIP model stays offline: the bundled mini-CLIP if it is there, else the tiny test model."""
    from course_utils.embeddings import BUNDLED_MODEL_DIR

    model = BUNDLED_MODEL_DIR if BUNDLED_MODEL_DIR.is_dir() else tiny_clip_dir
    return {"COURSE_CLIP_MODEL": str(model), "COURSE_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}


def test_cli_ask_in_a_subprocess_falls_from_gemini_to_openai(llm_server, tiny_clip_dir, tmp_path):
    gemini = llm_server("gemini").behave("status", status=503)
    openai = llm_server("openai", text="Widget A is the red one.")
    env = dict(os.environ) | cli_env(tiny_clip_dir, tmp_path)
    env |= {
        "COURSE_LLM_PROVIDERS": "gemini,openai",
        "GEMINI_API_KEY": "x", "GEMINI_BASE_URL": gemini.base_url,
        "OPENAI_API_KEY": "x", "OPENAI_BASE_URL": openai.base_url,
        "PYTHONPATH": os.pathsep.join([str(Path(cascade_module.__file__).parents[2]), env.get("PYTHONPATH", "")]),
    }  # fmt: skip
    env.pop("COURSE_OFFLINE", None)  # it would mean the offline answerer only
    done = subprocess.run(
        [sys.executable, "-m", "course_utils", "ask", "What red products do you have?", "--json"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["provider"], data["answer"], data["used_rag"]) == ("OpenAI", "Widget A is the red one.", True)
    top_k = [("image/png", Path(hit["path"]).read_bytes()) for hit in data["results"]]
    assert len(top_k) == 3 and sent_images(gemini) == top_k and sent_images(openai) == top_k


def test_cli_ask_answered_by_gemini(monkeypatch, llm_server, tiny_clip_dir, tmp_path, capsys):
    from course_utils.cli import main

    gemini = llm_server("gemini", text="Widget A, $12.99.")
    for name, value in cli_env(tiny_clip_dir, tmp_path).items():
        monkeypatch.setenv(name, value)
    use(monkeypatch, "gemini", gemini)
    monkeypatch.setenv("COURSE_LLM_PROVIDERS", "gemini")
    assert main(["ask", "What red products do you have?", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["provider"], data["llm_model"], data["answer"]) == ("Gemini", "gemini-2.5-flash", "Widget A, $12.99.")
    top_k = [("image/png", Path(hit["path"]).read_bytes()) for hit in data["results"]]
    assert len(top_k) == 3 and sent_images(gemini) == top_k
