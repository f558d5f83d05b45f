"""Provider faults that once escaped the cascade's promises: a timeout that was no deadline, keys
that could not be sent, an endpoint that could not be parsed, and keys that reached the output.

Every request goes through the real ``openai`` and ``google-genai`` SDKs to servers on 127.0.0.1
(``llm_servers.py``).
"""

from __future__ import annotations

import threading

import pytest
from llm_servers import SECRET, use

from course_utils.errors import CourseError
from course_utils.llm import get_cascade
from course_utils.llm.keys import scrub

PROMPT = "Question: What red products do you have?"


@pytest.fixture(autouse=True)
def clean_env(clean_llm_env):
    """Every test here starts from a clean LLM environment (see ``llm_servers.clean_llm_env``)."""


def ask_in_time(cascade, limit: float = 60.0, **kwargs):
    """``cascade.generate(PROMPT)`` in a thread; a call still running after ``limit`` s fails the test
    instead of hanging it (the cascade itself must give up long before)."""
    outcome: dict = {}

    def run():
        try:
            outcome["response"] = cascade.generate(PROMPT, **kwargs)
        except BaseException as exc:  # handed to the test below
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit)
    assert not worker.is_alive(), f"the call was still running after {limit:g} s: the timeout is not a deadline"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["response"]


# -- finding 4: the timeout is a deadline ---------------------------------------------------------


@pytest.mark.parametrize("protocol", ["openai", "gemini"])
@pytest.mark.parametrize("mode", ["trickle", "endless"])
def test_a_trickling_or_endless_answer_stops_at_the_deadline(monkeypatch, llm_server, protocol, mode):
    # trickle: a valid answer of a few hundred bytes, one byte every 0.1 s (half a minute in all)
    slow = llm_server(protocol, text="A red circle.").behave(mode, interval=0.1 if mode == "trickle" else 0.01)
    use(monkeypatch, protocol, slow)
    monkeypatch.setenv("COURSE_LLM_TIMEOUT", "1")
    response = ask_in_time(get_cascade(verbose=False, providers=f"{protocol},offline"))
    assert response.provider == "offline"
    assert response.attempts[0].reason == "timed out after 1 s"


# -- finding 8: a misconfigured provider is skipped with the reason -------------------------------


@pytest.mark.parametrize("bad", ["\u200b", "\u2026"], ids=["zero-width-space", "ellipsis"])
@pytest.mark.parametrize("protocol", ["openai", "gemini"])
def test_a_key_with_a_character_no_header_can_carry_is_skipped(monkeypatch, llm_server, protocol, bad):
    server = llm_server(protocol)
    use(monkeypatch, protocol, server, key=SECRET[:12] + bad + SECRET[12:])
    response = get_cascade(verbose=False, providers=f"{protocol},offline").generate(PROMPT)
    assert response.provider == "offline" and server.requests == []
    reason = response.attempts[0].reason
    assert response.attempts[0].outcome == "skipped" and f"U+{ord(bad):04X}" in reason and "again" in reason
    assert SECRET[:12] not in reason


@pytest.mark.parametrize("url", ["http://[::1", "http://[::1]:99999/v1", "ftp://127.0.0.1/v1", "127.0.0.1:8080"])
def test_an_endpoint_that_is_no_http_url_is_skipped(monkeypatch, url):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    cascade = get_cascade(verbose=False, providers="openai,offline")
    response = cascade.generate(PROMPT)
    assert response.provider == "offline"
    assert response.attempts[0].reason == "OPENAI_BASE_URL is not an http(s) URL"
    assert "OPENAI_BASE_URL is not an http(s) URL" in cascade.summary()
    with pytest.raises(CourseError, match="OpenAI: skipped \\(OPENAI_BASE_URL is not an http"):
        cascade.generate(PROMPT, provider="openai")


# -- finding 10: keys never reach the output ------------------------------------------------------


@pytest.mark.parametrize("protocol", ["openai", "gemini"])
def test_an_answer_that_echoes_the_key_is_scrubbed(monkeypatch, llm_server, protocol):
    server = llm_server(protocol, text="Your request was signed with {key}; a red circle.")
    use(monkeypatch, protocol, server)
    response = get_cascade(verbose=False, providers=protocol).generate(PROMPT)
    assert server.requests[0].key == SECRET
    assert response.text == "Your request was signed with ***; a red circle."


def test_a_key_prefix_in_a_server_error_is_scrubbed(monkeypatch, llm_server):
    server = llm_server("openai").behave("status", status=500, message=f"upstream rejected {SECRET[:20]}... (key)")
    use(monkeypatch, "openai", server)
    response = get_cascade(verbose=False, providers="openai,offline").generate(PROMPT)
    reason = response.attempts[0].reason
    assert reason.startswith("server error (HTTP 500): upstream rejected ***") and SECRET[:8] not in reason


def test_a_short_key_is_scrubbed_where_it_stands_alone(monkeypatch, llm_server):
    short = "k3y9!"
    server = llm_server("openai").behave("status", status=401, message="Incorrect API key provided: {key}.")
    use(monkeypatch, "openai", server, key=short)
    response = get_cascade(verbose=False, providers="openai,offline").generate(PROMPT)
    assert server.requests[0].key == short
    assert response.attempts[0].reason.endswith("Incorrect API key provided: ***.")
    # only where it stands alone: a short key is not cut out of other words
    assert scrub("ab k3y9! k3y9!x xk3y9!", [short]) == "ab *** k3y9!x xk3y9!"


def test_fragments_of_a_key_are_scrubbed_anywhere():
    key = "AIza" + "SyB-0123456789abcdefghijklmnopqrstu"  # assembled, so this file holds no key-shaped string
    assert scrub(f"key={key[:20]}…{key[-6:]}", [key]) == f"key=***…{key[-6:]}"  # 6 characters say nothing
    assert scrub(f"masked {key[:4]}********{key[-10:]}", [key]) == f"masked {key[:4]}***********"
    assert scrub("nothing secret here", [key]) == "nothing secret here"


def test_gemini_does_not_follow_a_redirect_to_another_host(monkeypatch, llm_server):
    elsewhere = llm_server("gemini", text="captured")
    gemini = llm_server("gemini")
    gemini.behave("redirect", location=f"{elsewhere.base_url}/v1beta/models/gemini-2.5-flash:generateContent")
    use(monkeypatch, "gemini", gemini)
    response = get_cascade(verbose=False, providers="gemini,offline").generate(PROMPT)
    assert elsewhere.requests == []  # the x-goog-api-key header never left for the other host
    assert response.provider == "offline" and "HTTP 307" in response.attempts[0].reason
