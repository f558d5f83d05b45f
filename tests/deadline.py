"""Running code that may hang (a read from a FIFO, say) without letting it hang the test run."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest


def run_with_a_deadline(function: Callable[[], Any], seconds: float = 60.0, fifos: Iterable[Path] = ()) -> Any:
    """``function()``, failing the test if it is still running after ``seconds``.

    A reader stuck on one of ``fifos`` (other paths in it are left alone) is set free (a writer
    opens and closes it, so the read sees the end of the file) and the test fails. Exceptions from ``function`` reach the caller.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = function()
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for fifo in fifos:
            try:
                if stat.S_ISFIFO(os.stat(fifo).st_mode):
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # nobody reads it (ENXIO), or it is gone
                pass
        thread.join(10)
        pytest.fail(f"still running after {seconds:.0f} s: blocked on a FIFO or a lock")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
