"""The notebooks that ask an LLM, run against a local server that plays a real multimodal model.

The rest of the suite executes the notebooks offline, where the rule-based answerer replies. Here
the course's cascade (``COURSE_LLM_PROVIDERS=openai``) talks the OpenAI-compatible protocol, through
the real ``openai`` SDK, to a server on 127.0.0.1 that answers as a model would
(:func:`llm_servers.play_model`): sentences that name the retrieved products, invented products
when asked blind (and, for one seed question, a catalog name by chance), an order when asked to
re-rank. In each notebook one call in the middle is answered 429 with ``Retry-After`` (the call
waits and asks again), and one answer is slow: within the deadline where a failure would stop the
lesson, past it in notebook 05's comparison table, whose row then shows the error while the other
rows stand. Every cell must run.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from llm_servers import FakeLLMServer, closed_port, request_prompt
from nbclient import NotebookClient

from course_utils.embeddings import BUNDLED_MODEL_DIR
from course_utils.prompts import CONTEXT_OPEN

ROOT = Path(__file__).resolve().parents[1]
FAKE_KEY = "sk-test-SECRET-model-0123456789abcdef"
MODEL = "course-test-vlm"
TIMEOUT = 3  # COURSE_LLM_TIMEOUT: the slow answer in 05 takes far longer
RATE_LIMITED = ("status", {"status": 429, "retry_after": 1, "message": "Rate limit reached for requests"})
SLOW = ("hang", {"delay": 1.5})  # slow, but within the deadline
TOO_SLOW = ("trickle", {"interval": 0.05})  # a few hundred bytes, one every 0.05 s: past the deadline

# notebook -> {the n-th generation request: how the server answers it}
INCIDENTS = {
    "04_multimodal_generation.ipynb": {1: SLOW, 2: RATE_LIMITED},
    "05_image_rag_pipeline.ipynb": {3: RATE_LIMITED, 6: TOO_SLOW},
    "06_exercises.ipynb": {1: RATE_LIMITED, 3: SLOW},
    "06_exercises_solutions.ipynb": {2: RATE_LIMITED, 4: SLOW},
    "08_evaluating_image_rag.ipynb": {},  # its ImageRAG uses the offline answerer: no request expected
}


def run_with_a_model(notebook: str, monkeypatch, tmp_path) -> tuple[str, FakeLLMServer]:
    """Execute ``notebook`` against the model server; every cell must run. Returns (outputs, server)."""
    server = FakeLLMServer("openai").behave("model")
    for n, (mode, options) in INCIDENTS[notebook].items():
        server.at(n, mode, **options)
    server.start()
    try:
        settings = {
            "COURSE_LLM_PROVIDERS": "openai",
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_API_KEY": FAKE_KEY,
            "OPENAI_MODEL": MODEL,
            "OPENAI_VISION_MODEL": MODEL,
            "COURSE_LLM_TIMEOUT": str(TIMEOUT),
            "COURSE_CLIP_MODEL": str(BUNDLED_MODEL_DIR),  # CLIP stays offline; the LLM does not
            "COURSE_CACHE_DIR": str(tmp_path / "cache"),
            "OLLAMA_HOST": f"http://127.0.0.1:{closed_port()}",
            "NO_PROXY": "127.0.0.1,localhost",
            "MPLBACKEND": "Agg",
        }
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("COURSE_OFFLINE", raising=False)
        nb = nbformat.read(ROOT / "notebooks" / notebook, as_version=4)
        NotebookClient(nb, timeout=300, resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
        return nbformat.writes(nb), server
    finally:
        server.stop()


@pytest.mark.parametrize("notebook", list(INCIDENTS))
def test_every_cell_runs_with_a_model_a_429_and_a_slow_answer(notebook, monkeypatch, tmp_path):
    outputs, server = run_with_a_model(notebook, monkeypatch, tmp_path)
    assert FAKE_KEY not in outputs
    if not INCIDENTS[notebook]:
        assert server.chat_requests == []
        return
    asked = server.chat_requests
    assert all(r.key == FAKE_KEY and r.body["model"] == MODEL for r in asked)
    # the 429: one line says the call waits, then the same request is sent again
    limited = next(n for n, incident in INCIDENTS[notebook].items() if incident is RATE_LIMITED)
    assert asked[limited].body == asked[limited - 1].body
    assert "OpenAI is rate limited (HTTP 429): waiting 1 s, then asking again." in outputs
    if notebook.startswith("05_"):
        check_the_comparison_table(outputs, server)


def check_the_comparison_table(outputs: str, server: FakeLLMServer) -> None:
    """Each row says who answered; the slow answer's row shows its error; a chance name is counted."""
    table = next(
        "".join(output["data"]["text/markdown"])
        for cell in nbformat.reads(outputs, as_version=4).cells
        if cell.get("id") == "05-14"
        for output in cell.outputs
        if "text/markdown" in output.get("data", {})
    )
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 5
    failed = [row for row in rows if "**error:**" in row]
    assert len(failed) == 1 and f"timed out after {TIMEOUT} s" in failed[0]
    for row in rows:
        if row not in failed:  # with and without RAG: each says who answered
            assert len(re.findall(rf"OpenAI · {MODEL}", row)) == 2
    blind = [r.answer for r in server.chat_requests if CONTEXT_OPEN not in request_prompt("openai", r.body)]
    assert any("Widget A" in answer for answer in blind)  # a blind answer used a catalog name by chance...
    assert "catalog names in blind answers, by chance: Widget A" in outputs  # ...and it is counted, not failed
