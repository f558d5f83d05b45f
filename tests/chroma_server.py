"""A real Chroma server for the tests: ``chroma run`` on a free 127.0.0.1 port, stopped afterwards.

``test_chroma.py`` imports the fixture (``from chroma_server import _chroma_server``) and asks for
it as ``chroma_server``: one server for the session, in a temporary folder, always stopped at the
end, failures included. The server is the one the chromadb wheel ships, started the way a learner
starts it (:class:`course_utils.store.ChromaServer`), so the HTTP tests see real HTTP.
"""

from __future__ import annotations

import socket

import pytest

from course_utils.store import ChromaServer


@pytest.fixture(scope="session", name="chroma_server")
def _chroma_server(tmp_path_factory):
    """A running :class:`ChromaServer`; ``.url`` is its address, ``.restart()`` keeps port and data."""
    server = ChromaServer(tmp_path_factory.mktemp("chroma-server"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


def closed_port_url() -> str:
    """An http:// address on 127.0.0.1 where nothing listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
