"""Local stand-ins for LLM APIs: threaded HTTP servers on 127.0.0.1 that speak the real wire protocols.

``FakeLLMServer("openai")`` answers ``POST /v1/chat/completions`` (and ``GET /api/tags``, as a local
Ollama does); ``FakeLLMServer("gemini")`` answers ``POST /v1beta/models/{model}:generateContent`` (or ``/v1/...``).
Each records every request (method, path, headers, JSON body) and answers as its behaviour says:
``text``, ``status`` (an HTTP error with the provider's error JSON; ``{key}`` in its message is
replaced by the key the client sent), ``hang`` (answers after a delay),
``malformed`` (200 with broken JSON), ``empty`` (200 without text), ``drop`` (the connection closes
mid-response) or ``huge`` (a very long answer). The real ``openai`` and ``google-genai`` SDKs talk to
them through the ``*_BASE_URL`` variables, so the tests exercise what a real provider would see.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = ("text", "status", "hang", "malformed", "empty", "drop", "huge")
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


@dataclass
class Recorded:
    """One request as the server saw it; ``headers`` has lower-case names."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def key(self) -> str | None:
        """The API key the client sent (Bearer token or ``x-goog-api-key``)."""
        auth = self.headers.get("authorization", "")
        return auth.removeprefix("Bearer ") if auth else self.headers.get("x-goog-api-key")


class FakeLLMServer:
    """A threaded HTTP server on a free 127.0.0.1 port speaking ``protocol`` ("openai" or "gemini")."""

    def __init__(self, protocol: str, text: str = "A grounded answer.", models: tuple[str, ...] = ()) -> None:
        if protocol not in ("openai", "gemini"):
            raise ValueError(protocol)
        self.protocol = protocol
        self.models = models  # what GET /api/tags lists (a local Ollama)
        self.requests: list[Recorded] = []
        self.mode, self.options = "text", {"text": text}
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
        self._stop.set()  # releases hanging handlers
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

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def _send(self, status: int, payload: Any) -> None:
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

            def _record(self, body: Any) -> Recorded:
                record = Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
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
                self._behave(server.mode, server.options, model, record)

            def _behave(self, mode: str, options: dict, model: str, record: Recorded) -> None:
                if mode == "text":
                    self._send(200, server._answer_json(options.get("text", "A grounded answer."), model, record.body))
                elif mode == "status":
                    status = options.get("status", 500)
                    message = options.get("message", "simulated failure").format(key=record.key)
                    self._send(status, server._error_json(status, message, options.get("details")))
                elif mode == "hang":
                    server._stop.wait(options.get("delay", 5.0))
                    self._send(200, server._answer_json("too late", model))
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
