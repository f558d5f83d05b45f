"""A ``chroma run`` server on this machine, started and stopped from Python.

For notebook 09 and the tests: the ``chroma`` command ships in the chromadb wheel.
Introduced in 09_scaling_with_a_vector_database.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import CourseError
from .chroma import import_chromadb

__all__ = ["ChromaServer", "chroma_command", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def chroma_command() -> list[str]:
    """How to run the ``chroma`` CLI that ships in the chromadb wheel, from this Python's environment."""
    import_chromadb()
    beside = Path(sys.executable).with_name("chroma")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("chroma")
    if found:
        return [found]
    # a venv whose scripts folder is not on PATH: the same entry point, called through this Python
    return [sys.executable, "-c", "import sys; from chromadb.cli.cli import app; sys.argv[0] = 'chroma'; app()"]


class ChromaServer:
    """A ``chroma run`` server on this machine, for the notebook and the tests; a context manager.

    ``ChromaServer(path).start()`` launches ``chroma run --host 127.0.0.1 --port PORT --path PATH``,
    waits until its heartbeat answers, and ``.url`` is then what ``--store`` takes. ``.stop()``
    (or leaving the ``with`` block) ends it; ``.restart()`` keeps the port and the data folder.
    Introduced in 09_scaling_with_a_vector_database.
    """

    def __init__(
        self, path: str | os.PathLike, host: str = "127.0.0.1", port: int | None = None, timeout: float = 90.0
    ) -> None:
        self.path = Path(path)
        self.host = host
        self.port = port or free_port(host)
        self.timeout = timeout
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"ChromaServer({self.url}, path={str(self.path)!r}, {state})"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def heartbeat(self) -> bool:
        """True when the server answers ``GET /api/v2/heartbeat``."""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> ChromaServer:
        if self.running:
            return self
        self.path.mkdir(parents=True, exist_ok=True)
        self._log = tempfile.TemporaryFile()
        # the server reads the same switch as the client: no usage reports leave the machine
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
        command = [*chroma_command(), "run", "--host", self.host, "--port", str(self.port), "--path", str(self.path)]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        atexit.register(self.stop)  # a notebook kernel that exits (or a failed cell) leaves no server behind
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.heartbeat():
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        log = self.log()
        self.stop()
        raise CourseError(f"The Chroma server did not start at {self.url} within {self.timeout:.0f} s:\n{log[-2000:]}")

    def log(self) -> str:
        """What the server printed so far."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 15 s); safe to call twice."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self.process = None
        atexit.unregister(self.stop)

    def restart(self) -> ChromaServer:
        self.stop()
        return self.start()

    def __enter__(self) -> ChromaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
