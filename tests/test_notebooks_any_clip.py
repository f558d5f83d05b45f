"""Every notebook runs to the end with a CLIP the course was not written against.

The README's test command executes the notebooks once through nbval, with the bundled mini-CLIP.
A learner on Colab meets another CLIP, so this module executes every notebook a second time with
a randomly initialised CLIP of other sizes (tests/foreign_clip.py), loaded through
``COURSE_CLIP_MODEL`` as a learner's own model would be. Its claims about a good model print ✗
verdicts; no cell may fail.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from foreign_clip import PROJECTION_DIM, build_foreign_clip
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def foreign_clip_dir(tmp_path_factory) -> Path:
    return build_foreign_clip(tmp_path_factory.mktemp("foreign-clip"))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One cache for the whole pass, as on a learner's machine: later notebooks reuse the index."""
    return tmp_path_factory.mktemp("cache")


def test_the_foreign_clip_is_not_the_mini_clip(foreign_clip_dir):
    from course_utils.embeddings import BUNDLED_MODEL_DIR, load_clip
    from course_utils.expectations import verified_model

    embedder = load_clip(str(foreign_clip_dir), device="cpu")
    bundled = load_clip(str(BUNDLED_MODEL_DIR), device="cpu")
    assert embedder.dim == PROJECTION_DIM != bundled.dim
    vision, bundled_vision = embedder.model.config.vision_config, bundled.model.config.vision_config
    assert vision.image_size != bundled_vision.image_size and vision.patch_size != bundled_vision.patch_size
    assert vision.hidden_size != bundled_vision.hidden_size
    assert embedder.model.config.text_config.hidden_size != bundled.model.config.text_config.hidden_size
    assert verified_model(embedder) is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_to_the_end_with_a_foreign_clip(path, foreign_clip_dir, cache_dir, monkeypatch, tmp_path):
    env = {
        "COURSE_CLIP_MODEL": str(foreign_clip_dir),
        "COURSE_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "COURSE_CACHE_DIR": str(cache_dir),
        "MPLBACKEND": "Agg",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # the kernel inherits this process's environment
    nb = nbformat.read(path, as_version=4)
    # A failing cell raises CellExecutionError, which names the cell and shows its traceback.
    NotebookClient(nb, timeout=600, resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nbformat.writes(nb)
    assert f"{foreign_clip_dir} (local folder)" in outputs, "the setup cell should report the foreign CLIP"
