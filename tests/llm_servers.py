"""Local stand-ins for LLM APIs: threaded HTTP servers on 127.0.0.1 that speak the real wire protocols.

``FakeLLMServer("openai")`` answers ``POST /v1/chat/completions`` (and ``GET /api/tags``, as a local
Ollama does); ``FakeLLMServer("gemini")`` answers ``POST /v1beta/models/{model}:generateContent`` (or ``/v1/...``).
Each records every request (method, path, headers, JSON body) and answers as its behaviour says:

- ``text``: a fixed answer (``{key}`` in it is replaced by the key the client sent);
- ``model``: plays a real multimodal model (see :func:`play_model`): sentences that name the
  products of the fenced catalog context, invented products when there is none, an order when
  asked to re-rank;
- ``status``: an HTTP error with the provider's error JSON (``{key}`` in its message is replaced by
  the key; ``retry_after`` adds a ``Retry-After`` header, or Gemini's ``RetryInfo`` detail);
- ``hang`` (answers after a delay), ``malformed`` (200 with broken JSON), ``empty`` (200 without
  text), ``drop`` (the connection closes mid-response), ``huge`` (a very long answer);
- ``trickle``: the answer one byte every ``interval`` seconds; ``endless``: a body that never ends;
- ``redirect``: ``307`` to ``location``.

``at(n, mode, ...)`` makes only the n-th generation request behave differently (a 429 in the middle
of a notebook, one slow answer); ``rpm=`` gives every key a quota of requests per minute, measured on
``clock`` (a :class:`FakeClock` shared with the cascade makes waiting instant and exact). The real
``openai`` and ``google-genai`` SDKs talk to these servers through the ``*_BASE_URL`` variables, so
the tests exercise what a real provider would see.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from course_utils.llm import keys, providers
from course_utils.prompts import parse_context, question_of

MODES = ("text", "model", "status", "hang", "malformed", "empty", "drop", "huge", "trickle", "endless", "redirect")
# The error status names each API puts in its error JSON.
_GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}

_GEMINI_ROUTE = re.compile(r"/v1(?:beta)?/models/([^/:]+):generateContent")


class FakeClock:
    """Pretend time for the cascade and the servers: ``sleep`` advances it at once and is recorded."""

    def __init__(self, start: float = 1000.0) -> None:
        self.time = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self.time

    def sleep(self, seconds: float) -> None:
        with self._lock:
            if len(self.sleeps) >= 1000:  # a wait without end fails the test instead of hanging it
                raise RuntimeError("the code under test keeps waiting")
            self.sleeps.append(seconds)
            self.time += seconds


class RealClock:
    def now(self) -> float:
        return time.monotonic()


@dataclass
class Recorded:
    """One request as the server saw it; ``headers`` has lower-case names; ``at`` on the server's clock."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float = 0.0
    answer: str = field(default="", repr=False)  # the answer text sent back, if any

    @property
    def key(self) -> str | None:
        """The API key the client sent (Bearer token or ``x-goog-api-key``)."""
        auth = self.headers.get("authorization", "")
        return auth.removeprefix("Bearer ") if auth else self.headers.get("x-goog-api-key")


# -- a real model, played -------------------------------------------------------------------------

# Blind answers invent plausible products with prices the catalog does not have; one of them, as a
# real model sometimes does, happens to use a catalog name.
INVENTED_ANSWERS = (
    "We have a lovely selection for that! The Crimson Classic Mug ($14.99) is a customer favourite, "
    "and the Scarlet Trail Backpack at $39.95 comes in the same shade.",
    "Our Widget A is a popular choice for that, and the Harbor Blue Water Bottle ($17.50) is another "
    "good option if you like something sturdier.",
    "I'd suggest the Evergreen Ceramic Planter for $21.00, or the Classic Oak Desk Organizer at $32.50, "
    "both of which are very well reviewed.",
    "Right now the most popular items are the Sunset Throw Pillow ($16.75) and the Midnight Canvas Tote at $22.00.",
)


def _ranking(entries: list[dict], question: str) -> list[int]:
    """The order a sensible model would give: products whose looks fit the question, cheapest first if asked."""
    words = {w.rstrip("s") for w in re.findall(r"[a-z]+", question.lower())}
    words |= {"circle"} if "circular" in words or "round" in words else set()

    def fit(entry: dict) -> int:
        looks = {str(entry.get(k, "")).lower() for k in ("color_name", "shape", "pattern")}
        return len(words & looks)

    cheapest = "cheapest" in words or "cheap" in words
    ordered = sorted(entries, key=lambda e: (-fit(e), e["price"] if cheapest and e["price"] else 0, e["rank"]))
    return [e["rank"] for e in ordered]


def play_model(prompt: str) -> str:
    """What a multimodal model answers to ``prompt``, in sentences.

    With the course's fenced context it names the retrieved products (the first two, with their
    real prices), or says that none fits when the prompt notes there is no match; asked to re-rank,
    it gives entry numbers; without context (a blind question) it invents products, the same ones
    for the same question (of the course's seed questions, the green one gets "Widget A").
    """
    entries = parse_context(prompt)
    if not entries:
        pick = int(hashlib.sha256(question_of(prompt).encode()).hexdigest(), 16) % len(INVENTED_ANSWERS)
        return INVENTED_ANSWERS[pick]
    if "entry numbers only" in prompt:
        order = _ranking(entries, question_of(prompt))
        return "Looking at the images and the entries, my ranking is:\n" + ", ".join(map(str, order))
    first = entries[0]
    looks = f"{first['color_name']} {first['shape']}"
    a_looks = ("an " if looks[0] in "aeiou" else "a ") + looks
    if "none of these products stands out" in prompt:
        return (
            f"I'm sorry, none of the products shown is what you asked for. The closest is {first['name']}, "
            f"{a_looks} at ${first['price']:.2f}, but it is not a match."
        )
    answer = (
        f"From the catalog, {first['name']} fits best: it is {a_looks} with a {first['pattern']} pattern, "
        f"priced at ${first['price']:.2f}."
    )
    if len(entries) > 1:
        second = entries[1]
        answer += (
            f" You could also look at {second['name']}, the {second['color_name']} {second['shape']} "
            f"(${second['price']:.2f})."
        )
    return answer


def request_prompt(protocol: str, body: Any) -> str:
    """The user prompt's text in an OpenAI-compatible or Gemini request body."""
    if not isinstance(body, dict):
        return ""
    if protocol == "gemini":
        parts = (body.get("contents") or [{}])[0].get("parts") or []
        return "".join(p.get("text") or "" for p in parts if isinstance(p, dict))
    content = (body.get("messages") or [{}])[-1].get("content")
    if isinstance(content, list):
        return "".join(b.get("text") or "" for b in content if isinstance(b, dict) and b.get("type") == "text")
    return str(content or "")


# -- the server -----------------------------------------------------------------------------------


class FakeLLMServer:
    """A threaded HTTP server on a free 127.0.0.1 port speaking ``protocol`` ("openai" or "gemini")."""

    def __init__(
        self,
        protocol: str,
        text: str = "A grounded answer.",
        models: tuple[str, ...] = (),
        rpm: int | None = None,
        clock: Any = None,
    ) -> None:
        if protocol not in ("openai", "gemini"):
            raise ValueError(protocol)
        self.protocol = protocol
        self.models = models  # what GET /api/tags lists (a local Ollama)
        self.requests: list[Recorded] = []
        self.mode, self.options = "text", {"text": text}
        self.scheduled: dict[int, tuple[str, dict]] = {}
        self.rpm, self.clock = rpm, clock or RealClock()
        self.rate_limited = 0  # 429s sent because of the quota
        self._quota: dict[str | None, list[float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # -- set-up -----------------------------------------------------------------------------------
    def behave(self, mode: str, **options: Any) -> FakeLLMServer:
        """Answer every later request this way, e.g. ``behave("status", status=429)``."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.mode, self.options = mode, options
        return self

    def at(self, n: int, mode: str, **options: Any) -> FakeLLMServer:
        """Answer only the ``n``-th generation request (counting from 1) this way."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.scheduled[n] = (mode, options)
        return self

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """What ``<PREFIX>_BASE_URL`` should be: ``.../v1`` for OpenAI-compatible servers."""
        root = f"http://127.0.0.1:{self.port}"
        return root + "/v1" if self.protocol == "openai" else root

    @property
    def chat_requests(self) -> list[Recorded]:
        """The generation requests (not the /api/tags probes)."""
        return [r for r in self.requests if r.method == "POST"]

    def start(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # releases hanging and trickling handlers
        self._server.shutdown()
        self._server.server_close()

    # -- answers ----------------------------------------------------------------------------------
    def _prompt_counts(self, body: Any) -> tuple[int, int]:
        """(text characters, images) of a request, to report plausible token usage like a real API."""
        chars = images = 0
        if self.protocol == "gemini":
            system = ((body or {}).get("systemInstruction") or {}).get("parts") or []
            parts = [p for c in (body or {}).get("contents") or [] for p in c.get("parts") or []] + system
        else:
            parts = []
            for message in (body or {}).get("messages") or []:
                content = message.get("content")
                parts += content if isinstance(content, list) else [{"text": content or ""}]
        for part in parts:
            if part.get("inlineData") or part.get("inline_data") or part.get("type") == "image_url":
                images += 1
            else:
                chars += len(part.get("text") or "")
        return chars, images

    def _answer_json(self, text: str | None, model: str, body: Any = None) -> dict:
        # usage as a real API reports it: Gemini counts image tokens apart (258 per small image),
        # OpenAI-compatible APIs give one prompt count (here text characters / 4, plus 85 per image)
        chars, images = self._prompt_counts(body)
        text_tokens = -(-chars // 4)
        if self.protocol == "gemini":
            if text is None:  # every token spent on thinking: no parts at all
                candidate = {"content": {"role": "model"}, "finishReason": "MAX_TOKENS", "index": 0}
            else:
                candidate = {
                    "content": {"role": "model", "parts": [{"text": text}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            return {
                "candidates": [candidate],
                "modelVersion": model,
                "usageMetadata": {
                    "promptTokenCount": text_tokens + 258 * images,
                    "candidatesTokenCount": 5,
                    "totalTokenCount": text_tokens + 258 * images + 5,
                    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": text_tokens}]
                    + ([{"modality": "IMAGE", "tokenCount": 258 * images}] if images else []),
                },
            }
        message = {"role": "assistant", "content": text if text is not None else ""}
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop" if text is not None else "length"}],
            "usage": {
                "prompt_tokens": text_tokens + 85 * images,
                "completion_tokens": 5,
                "total_tokens": text_tokens + 85 * images + 5,
            },
        }

    def _error_json(self, status: int, message: str, details: list | None = None) -> dict:
        if self.protocol == "gemini":
            error = {"code": status, "message": message, "status": _GEMINI_STATUS.get(status, "UNKNOWN")}
            return {"error": error | ({"details": details} if details else {})}
        return {"error": {"message": message, "type": "invalid_request_error", "code": str(status)}}

    def _text_for(self, mode: str, options: dict, record: Recorded) -> str:
        """The answer text of a request that gets one."""
        if mode == "model" or (mode in ("hang", "trickle") and self.mode == "model"):
            return play_model(request_prompt(self.protocol, record.body))
        if mode == "hang":
            return "too late"
        return str(options.get("text", self.options.get("text", "A grounded answer."))).replace(
            "{key}", str(record.key)
        )

    def _over_quota(self, record: Recorded) -> float | None:
        """Seconds until the key may ask again, or None when it is within its quota (and is counted)."""
        if self.rpm is None:
            return None
        with self._lock:
            now = self.clock.now()
            recent = [t for t in self._quota.get(record.key, []) if t > now - 60.0]
            if len(recent) >= self.rpm:
                self._quota[record.key] = recent
                self.rate_limited += 1
                return recent[0] + 60.0 - now
            self._quota[record.key] = [*recent, now]
            return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def _send(self, status: int, payload: Any, headers: dict | None = None) -> None:
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

            def _record(self, body: Any) -> Recorded:
                record = Recorded(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body, server.clock.now()
                )
                with server._lock:
                    server.requests.append(record)
                return record

            def do_GET(self) -> None:
                self._record(None)
                if self.path == "/api/tags":
                    self._send(200, {"models": [{"name": name, "model": name} for name in server.models]})
                else:
                    self._send(404, server._error_json(404, f"no route {self.path}"))

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                record = self._record(body)
                if server.protocol == "openai":
                    if self.path != "/v1/chat/completions":
                        return self._send(404, server._error_json(404, f"no route {self.path}"))
                    model = (body or {}).get("model", "?")
                else:
                    # the SDK picks the API version (v1beta, or v1 in newer releases)
                    route = _GEMINI_ROUTE.fullmatch(self.path)
                    if not route:
                        return self._send(404, server._error_json(404, f"no route {self.path}"))
                    model = route.group(1)
                wait = server._over_quota(record)
                if wait is not None:
                    return self._status(429, "Resource has been exhausted (requests per minute).", wait, record)
                n = len(server.chat_requests)
                mode, options = server.scheduled.get(n, (server.mode, server.options))
                self._behave(mode, options, model, record)

            def _status(self, status: int, message: str, retry_after: float | None, record: Recorded) -> None:
                headers, details = {}, None
                if retry_after is not None and server.protocol == "openai":
                    headers["Retry-After"] = str(math.ceil(retry_after))
                elif retry_after is not None:
                    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after:g}s"}]
                self._send(
                    status, server._error_json(status, message.replace("{key}", str(record.key)), details), headers
                )

            def _behave(self, mode: str, options: dict, model: str, record: Recorded) -> None:
                if mode in ("text", "model"):
                    record.answer = server._text_for(mode, options, record)
                    self._send(200, server._answer_json(record.answer, model, record.body))
                elif mode == "status":
                    status = options.get("status", 500)
                    if "details" in options:
                        message = options.get("message", "simulated failure").replace("{key}", str(record.key))
                        self._send(status, server._error_json(status, message, options["details"]))
                    else:
                        self._status(
                            status, options.get("message", "simulated failure"), options.get("retry_after"), record
                        )
                elif mode == "hang":
                    server._stop.wait(options.get("delay", 5.0))
                    record.answer = server._text_for(mode, options, record)
                    self._send(200, server._answer_json(record.answer, model))
                elif mode == "malformed":
                    self._send(200, b'{"choices": [ {"message": oops')
                elif mode == "empty":
                    self._send(200, server._answer_json(None, model))
                elif mode == "huge":
                    self._send(200, server._answer_json("x" * options.get("size", 100_000), model))
                elif mode == "drop":
                    # promise a body, send a fragment, close: the connection dies mid-response
                    self.wfile.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b'Content-Length: 5000\r\n\r\n{"candidates": ['
                    )
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                elif mode == "trickle":
                    # a valid answer, one byte at a time: every read succeeds, the whole takes ages
                    record.answer = server._text_for(mode, options, record)
                    self._stream(json.dumps(server._answer_json(record.answer, model)).encode(), options)
                elif mode == "endless":
                    self._stream(None, options)
                elif mode == "redirect":
                    self._send(307, {"moved": options["location"]}, {"Location": options["location"]})

            def _stream(self, body: bytes | None, options: dict) -> None:
                """Send ``body`` one byte every ``interval`` s, or (None) spaces forever."""
                interval = options.get("interval", 0.2)
                size = len(body) if body is not None else 10**12
                try:
                    self.wfile.write(
                        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n".encode()
                    )
                    self.wfile.flush()
                    chunks = (
                        (body[i : i + 1] for i in range(len(body)))
                        if body is not None
                        else iter(lambda: b" " * 64, b"")
                    )
                    for chunk in chunks:
                        if server._stop.wait(interval):
                            break
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError, OSError):  # the client hung up: good
                    pass
                self.close_connection = True

        return Handler


def closed_port() -> int:
    """A local port nothing listens on (bound, then released), for a local Ollama that is not there."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerPool:
    """Starts servers on demand and stops them all on exit: ``with ServerPool() as start: start("openai")``."""

    def __init__(self) -> None:
        self.servers: list[FakeLLMServer] = []

    def __enter__(self) -> ServerPool:
        return self

    def __call__(self, protocol: str, **kwargs: Any) -> FakeLLMServer:
        server = FakeLLMServer(protocol, **kwargs).start()
        self.servers.append(server)
        return server

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            server.stop()


# -- fixtures for the tests that talk to these servers --------------------------------------------

SECRET = "sk-test-SECRET-1234567890abcdef"
PREFIX = {"gemini": "GEMINI", "openai": "OPENAI", "groq": "GROQ", "ollama": "OLLAMA"}


@pytest.fixture
def clean_llm_env(monkeypatch, tmp_path):
    """No key, endpoint or course setting leaks in from the machine; .env files and Colab secrets
    a test loads leave with it; the response cache lives in the test's folder; the local-Ollama
    probe finds a closed port."""
    saved = dict(os.environ)
    names = [*providers.ALL_KEY_ENVS, "COURSE_LLM_PROVIDERS", "COURSE_LLM_TIMEOUT", "COURSE_OFFLINE"]
    names += ["COURSE_LLM_CACHE", "COURSE_LLM_MAX_WAIT", "GOOGLE_GENAI_USE_VERTEXAI", "OPENAI_ORG_ID"]
    names += ["OPENAI_PROJECT_ID"]
    suffixes = ("BASE_URL", "MODEL", "VISION_MODEL", "RPM")
    names += [f"{p.env_prefix}_{suffix}" for p in providers.PROVIDERS for suffix in suffixes]
    for name in names:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
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
