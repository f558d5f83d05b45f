"""A class of thirty on free tiers: waiting out a rate limit, pacing, and the response cache.

On the wire, through the real ``openai`` and ``google-genai`` SDKs, against the servers of
``llm_servers.py``. Every wait goes through a :class:`~llm_servers.FakeClock`: it is recorded, not
slept, so these tests assert how long the cascade waits without ever waiting.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from llm_servers import FakeClock, use

from course_utils.errors import CourseError
from course_utils.llm import Cascade
from course_utils.llm.cache import ResponseCache, cache_key
from course_utils.llm.images import encode_image
from course_utils.rag import ImageRAG
from course_utils.widgets import ask_panel

PROMPT = "Question: What red products do you have?"
QUESTIONS = ["What red products do you have?", "Which products have a striped pattern?", "Show me a green product."]


@pytest.fixture(autouse=True)
def clean_env(clean_llm_env):
    """Every test here starts from a clean LLM environment (see ``llm_servers.clean_llm_env``)."""


def cascade(providers: str, clock: FakeClock) -> Cascade:
    return Cascade(providers=providers, clock=clock)


# -- waiting out a rate limit ---------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["openai", "gemini"])
def test_a_pinned_call_waits_as_asked_after_a_429_then_answers(monkeypatch, llm_server, capsys, protocol):
    # OpenAI-compatible servers send Retry-After; Gemini puts a RetryInfo delay in its error JSON
    server = llm_server(protocol, text="A red circle.").at(1, "status", status=429, retry_after=7)
    use(monkeypatch, protocol, server)
    clock = FakeClock()
    response = cascade(f"{protocol},offline", clock).generate(PROMPT, provider=protocol)
    assert response.text == "A red circle." and len(server.chat_requests) == 2
    assert clock.sleeps == [7]
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "rate limited (HTTP 429): waiting 7 s, then asking again" in out


def test_without_a_delay_from_the_service_the_waits_double(monkeypatch, llm_server):
    server = llm_server("openai").at(1, "status", status=503).at(2, "status", status=503).at(3, "status", status=429)
    use(monkeypatch, "openai", server)
    clock = FakeClock()
    assert cascade("openai", clock).generate(PROMPT).text == "A grounded answer."  # the only provider: it waits
    assert clock.sleeps == [2, 4, 8]


def test_the_total_wait_has_a_ceiling(monkeypatch, llm_server):
    server = llm_server("openai").behave("status", status=429, retry_after=20)
    use(monkeypatch, "openai", server)
    monkeypatch.setenv("COURSE_LLM_MAX_WAIT", "45")
    clock = FakeClock()
    with pytest.raises(CourseError, match=r"waited 40 s; 20 s more would pass COURSE_LLM_MAX_WAIT=45"):
        cascade("openai", clock).generate(PROMPT, provider="openai")
    assert clock.sleeps == [20, 20] and len(server.chat_requests) == 3

    server.behave("status", status=429, retry_after=3600)  # a daily quota: no point waiting at all
    clock = FakeClock()
    with pytest.raises(CourseError, match=r"3600 s more would pass COURSE_LLM_MAX_WAIT=45"):
        cascade("openai", clock).generate(PROMPT, provider="openai")
    assert clock.sleeps == []

    monkeypatch.setenv("COURSE_LLM_MAX_WAIT", "0")
    server.behave("status", status=429, retry_after=1)
    with pytest.raises(CourseError, match=r"rate limited or out of quota \(HTTP 429\)"):
        cascade("openai", clock).generate(PROMPT, provider="openai")
    assert clock.sleeps == []


def test_a_service_that_asks_for_no_wait_is_asked_a_bounded_number_of_times(monkeypatch, llm_server):
    server = llm_server("openai").behave("status", status=503, retry_after=0)
    use(monkeypatch, "openai", server)
    clock = FakeClock()
    with pytest.raises(CourseError, match=r"server error \(HTTP 503\).*asked 6 times"):
        cascade("openai", clock).generate(PROMPT, provider="openai")
    assert len(server.chat_requests) == 6 and clock.sleeps == [0] * 5


def test_an_unpinned_call_moves_on_at_once_and_other_errors_never_wait(monkeypatch, llm_server):
    gemini = llm_server("gemini").behave("status", status=429, retry_after=30)
    openai = llm_server("openai", text="from openai")
    use(monkeypatch, "gemini", gemini)
    use(monkeypatch, "openai", openai)
    clock = FakeClock()
    assert cascade("gemini,openai", clock).generate(PROMPT).text == "from openai"
    assert clock.sleeps == [] and len(gemini.chat_requests) == 1  # as fast as before: no wait, no retry
    gemini.behave("status", status=500)
    with pytest.raises(CourseError, match="HTTP 500"):
        cascade("gemini", clock).generate(PROMPT, provider="gemini")
    assert clock.sleeps == [] and len(gemini.chat_requests) == 2


# -- pacing ---------------------------------------------------------------------------------------


def test_pacing_spaces_the_calls_to_a_provider(monkeypatch, llm_server, capsys):
    clock = FakeClock()
    openai = llm_server("openai", clock=clock)
    gemini = llm_server("gemini", clock=clock)
    use(monkeypatch, "openai", openai)
    use(monkeypatch, "gemini", gemini)
    monkeypatch.setenv("OPENAI_RPM", "20")  # one request every 3 s; Gemini is not paced
    monkeypatch.setenv("COURSE_LLM_CACHE", "0")
    llm = cascade("openai,gemini", clock)
    for _ in range(4):
        llm.generate(PROMPT)
        llm.generate(PROMPT, provider="gemini")
    starts = [r.at for r in openai.chat_requests]
    assert [b - a for a, b in zip(starts, starts[1:], strict=False)] == [3.0, 3.0, 3.0]
    assert len(gemini.chat_requests) == 4 and clock.sleeps == [3.0, 3.0, 3.0]
    assert capsys.readouterr().out.count("to stay under OPENAI_RPM=20") == 3


def test_pacing_keeps_a_burst_under_the_quota(monkeypatch, llm_server):
    clock = FakeClock()
    server = llm_server("openai", rpm=10, clock=clock)  # a free tier: ten requests a minute per key
    use(monkeypatch, "openai", server)
    monkeypatch.setenv("COURSE_LLM_CACHE", "0")
    llm = cascade("openai", clock)
    for _ in range(12):
        llm.generate(PROMPT)
    unpaced_waits = sum(clock.sleeps)
    assert server.rate_limited == 1 and unpaced_waits == 60  # the 11th request hit the limit and waited a minute

    clock = FakeClock()
    server = llm_server("openai", rpm=10, clock=clock)
    use(monkeypatch, "openai", server)
    monkeypatch.setenv("OPENAI_RPM", "10")
    llm = cascade("openai", clock)
    for _ in range(12):
        llm.generate(PROMPT)
    assert server.rate_limited == 0 and sum(clock.sleeps) == 66  # spaced 6 s apart instead


@pytest.mark.parametrize("value", ["ten", "0", "-3", "nan"])
def test_a_provider_with_a_bad_rpm_is_skipped_with_the_reason(monkeypatch, value):
    monkeypatch.setenv("GROQ_API_KEY", "gsk-test-key-123456")
    monkeypatch.setenv("GROQ_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("GROQ_RPM", value)
    response = cascade("groq,offline", FakeClock()).generate(PROMPT)
    assert response.provider == "offline" and response.attempts[0].outcome == "skipped"
    assert response.attempts[0].reason.startswith("GROQ_RPM")


# -- the response cache ---------------------------------------------------------------------------


def compare_all(rag: ImageRAG) -> list:
    return [rag.compare(question, k=2) for question in QUESTIONS]


def test_a_second_run_of_the_comparison_makes_no_call(monkeypatch, llm_server, tiny_index, tiny_embedder, tmp_path):
    server = llm_server("openai").behave("model")
    use(monkeypatch, "openai", server)
    rag = ImageRAG(tiny_index, tiny_embedder, cascade("openai", FakeClock()))
    first = compare_all(rag)
    assert len(server.chat_requests) == 6 and not any(r.cached for pair in first for r in pair)
    again = compare_all(ImageRAG(tiny_index, tiny_embedder, cascade("openai", FakeClock())))  # a new kernel, say
    assert len(server.chat_requests) == 6  # no call at all
    assert all(r.cached for pair in again for r in pair)
    assert [(r.answer, r.provider, r.model) for pair in again for r in pair] == [
        (r.answer, r.provider, r.model) for pair in first for r in pair
    ]
    assert again[0][0].attempts[0].outcome == "cached" and again[0][0].to_dict()["cached"] is True
    assert len(list((tmp_path / "cache" / "llm-answers").rglob("*.json"))) == 6

    panel = ask_panel(rag, k=2)
    panel.query.value = QUESTIONS[0]
    panel.run()
    assert len(server.chat_requests) == 6
    assert "cached answer" in panel.with_rag.value and "cached answer" in panel.without_rag.value


def test_what_differs_is_asked_again(monkeypatch, llm_server, tiny_index, tiny_embedder):
    server = llm_server("openai").behave("model")
    use(monkeypatch, "openai", server)
    llm = cascade("openai", FakeClock())
    first, second = tiny_index.paths[0], tiny_index.paths[1]
    llm.generate_multimodal(PROMPT, [first], system_prompt="Be brief.")
    llm.generate_multimodal(PROMPT, [first], system_prompt="Be brief.")
    assert len(server.chat_requests) == 1
    llm.generate_multimodal(PROMPT, [second], system_prompt="Be brief.")  # other image bytes
    llm.generate_multimodal(PROMPT, [first], system_prompt="Be thorough.")  # another system prompt
    llm.generate_multimodal(PROMPT + "?", [first], system_prompt="Be brief.")  # another prompt
    llm.generate_multimodal(PROMPT, [first], system_prompt="Be brief.", model="other-model")  # another model
    llm.generate_multimodal(PROMPT, [first], system_prompt="Be brief.", max_tokens=50)  # another limit
    assert len(server.chat_requests) == 6
    red, blue = encode_image(first), encode_image(second)
    keys = {
        cache_key("openai", "m", "s", "p", [red], 10),
        cache_key("gemini", "m", "s", "p", [red], 10),
        cache_key("openai", "m", "s", "p", [red, blue], 10),
        cache_key("openai", "m", None, "p", [red], 10),
    }
    assert len(keys) == 4


def test_a_corrupt_cache_entry_is_ignored_and_replaced(monkeypatch, llm_server, tiny_index, tiny_embedder, tmp_path):
    server = llm_server("openai").behave("model")
    use(monkeypatch, "openai", server)
    rag = ImageRAG(tiny_index, tiny_embedder, cascade("openai", FakeClock()))
    first = compare_all(rag)
    entries = sorted((tmp_path / "cache" / "llm-answers").rglob("*.json"))
    damage = [b"", b"\xff\xfe not json", b'{"key": "another", "text": "hijacked"}', b"[1, 2]", b'{"text": 42}']
    for entry, garbage in zip(entries[:-1], damage, strict=True):
        entry.write_bytes(garbage)
    entries[-1].unlink()
    entries[-1].mkdir()  # not even a file
    again = compare_all(rag)
    assert len(server.chat_requests) == 6 + len(damage) + 1  # every damaged entry was asked again
    assert [r.answer for pair in again for r in pair] == [r.answer for pair in first for r in pair]
    assert "hijacked" not in json.dumps([r.to_dict() for pair in again for r in pair])
    repaired = [path for path in entries[:-1] if json.loads(path.read_bytes()).get("text")]
    assert len(repaired) == len(damage)


def test_course_llm_cache_0_turns_the_cache_off(monkeypatch, llm_server, tiny_index, tiny_embedder, tmp_path):
    server = llm_server("openai").behave("model")
    use(monkeypatch, "openai", server)
    monkeypatch.setenv("COURSE_LLM_CACHE", "0")
    rag = ImageRAG(tiny_index, tiny_embedder, cascade("openai", FakeClock()))
    compare_all(rag)
    again = compare_all(rag)
    assert len(server.chat_requests) == 12 and not any(r.cached for pair in again for r in pair)
    assert not (tmp_path / "cache" / "llm-answers").exists()


def test_a_cache_that_cannot_be_written_costs_only_the_call(monkeypatch, llm_server, tmp_path):
    server = llm_server("openai")
    use(monkeypatch, "openai", server)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("COURSE_CACHE_DIR", str(blocker))
    llm = cascade("openai", FakeClock())
    assert llm.generate(PROMPT).text == llm.generate(PROMPT).text == "A grounded answer."
    assert len(server.chat_requests) == 2
    assert ResponseCache(blocker / "llm-answers").get("0" * 64) is None


def test_no_key_reaches_the_cache(monkeypatch, llm_server, tmp_path):
    from llm_servers import SECRET

    server = llm_server("openai", text="signed {key}")
    use(monkeypatch, "openai", server)
    llm = cascade("openai", FakeClock())
    assert llm.generate(PROMPT).text == "signed ***" == llm.generate(PROMPT).text
    stored = b"".join(path.read_bytes() for path in (tmp_path / "cache").rglob("*.json"))
    assert b"signed ***" in stored and SECRET.encode() not in stored


# -- the kept figures -----------------------------------------------------------------------------


def test_the_kept_class_mode_figures_are_what_the_script_measures():
    """docs/colab.md quotes docs/benchmarks/class_mode.json; the script still measures exactly that."""
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "scripts"))
    try:
        import class_mode
    finally:
        sys.path.remove(str(root / "scripts"))
    kept = json.loads(class_mode.KEPT.read_text(encoding="utf-8"))
    assert class_mode.measure() == kept
    defaults = kept["setups"][0]["runs"]
    assert (defaults[1]["requests"], defaults[1]["cache_hits"]) == (0, 10)
    assert "benchmarks/class_mode.json" in (root / "docs" / "colab.md").read_text(encoding="utf-8")
