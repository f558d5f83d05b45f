"""A recognisable fake key, configured for real, never shows up in a notebook's outputs."""

from pathlib import Path

import nbformat
import pytest
from llm_servers import FakeLLMServer, closed_port
from nbclient import NotebookClient

from course_utils.embeddings import BUNDLED_MODEL_DIR

ROOT = Path(__file__).resolve().parents[1]
FAKE_KEY = "sk-test-SECRET-notebook-0123456789abcdef"


@pytest.mark.parametrize("notebook", ["04_multimodal_generation.ipynb", "05_image_rag_pipeline.ipynb"])
def test_fake_key_is_never_in_notebook_outputs(notebook, monkeypatch, tmp_path):
    server = FakeLLMServer("gemini", text="Widget A is the red circle, $12.99.").start()
    try:
        env = {
            "GEMINI_API_KEY": FAKE_KEY,
            "GEMINI_BASE_URL": server.base_url,
            "COURSE_LLM_PROVIDERS": "gemini,offline",
            "COURSE_CLIP_MODEL": str(BUNDLED_MODEL_DIR),  # CLIP stays offline; the LLM does not
            "OLLAMA_HOST": f"http://127.0.0.1:{closed_port()}",
            "COURSE_CACHE_DIR": str(tmp_path / "cache"),
            "MPLBACKEND": "Agg",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("COURSE_OFFLINE", raising=False)
        nb = nbformat.read(ROOT / "notebooks" / notebook, as_version=4)
        # cells may assert offline-only facts; what matters here is everything they print
        NotebookClient(nb, timeout=300, allow_errors=True, resources={"metadata": {"path": str(tmp_path)}}).execute()
        outputs = nbformat.writes(nb)
        assert server.chat_requests, "the notebook never reached the Gemini-protocol server"
        assert "Gemini" in outputs
        assert FAKE_KEY not in outputs
    finally:
        server.stop()
