"""scripts/build_site.py without a browser or a kernel: static widget pictures and rewritten links.

The whole site is built and opened in Chromium by tests/browser/test_site_in_browser.py; these
tests pin the two transformations the build makes on its way, on small hand-made inputs.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from project_scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


BUILD = load_script("build_site")
PNG = base64.b64encode(b"\x89PNG fake bytes").decode()
COLAB = "https://colab.research.google.com/github/o/r/blob/main/notebooks/03_x.ipynb"


def _model(name: str, buffers: list | None = None, **state) -> dict:
    return {"model_name": name, "state": state, "buffers": buffers or []}


def _notebook(state: dict, root: str) -> dict:
    view = {"model_id": root, "version_major": 2, "version_minor": 0}
    output = {"output_type": "display_data", "data": {BUILD.WIDGET_VIEW: view, "text/plain": "VBox(...)"}}
    return {
        "metadata": {"widgets": {BUILD.WIDGET_STATE: {"state": state}}},
        "cells": [{"cell_type": "code", "outputs": [output]}],
    }


def test_a_panel_becomes_a_static_picture_of_its_last_state():
    state = {
        "panel": _model("VBoxModel", children=["IPY_MODEL_row", "IPY_MODEL_card"], _dom_classes=["course-x"]),
        "row": _model("HBoxModel", children=["IPY_MODEL_query", "IPY_MODEL_k", "IPY_MODEL_go"]),
        "query": _model("TextModel", description="Query", value="red <circle>", placeholder="e.g."),
        "k": _model("IntSliderModel", description="k", value=5, min=1, max=8),
        "go": _model("ButtonModel", description="Search"),
        "card": _model("VBoxModel", children=["IPY_MODEL_img", "IPY_MODEL_caption"], layout="IPY_MODEL_frame"),
        "frame": _model("LayoutModel", border="2px solid #27AE60", padding="4px", width=None),
        "img": _model(
            "ImageModel", [{"path": ["value"], "data": PNG, "encoding": "base64"}], format="png", width="180"
        ),
        "caption": _model("HTMLModel", value="<b>#1 Widget A</b>"),
    }
    notebook = _notebook(state, "panel")

    assert BUILD.static_widgets(notebook, COLAB) == 1
    output = notebook["cells"][0]["outputs"][0]
    assert list(output["data"]) == ["text/html"], "the widget view and its text repr are replaced"
    page = output["data"]["text/html"]
    assert 'class="course-static-panel"' in page and f'href="{COLAB}"' in page
    assert f'src="data:image/png;base64,{PNG}"' in page and 'width="180"' in page
    assert 'value="red &lt;circle&gt;"' in page and "disabled" in page, "the last query, escaped, in a dead field"
    assert 'value="5"' in page and ">Search</button>" in page
    assert "<b>#1 Widget A</b>" in page
    assert 'style="padding: 4px; border: 2px solid #27AE60"' in page, "the layout's set traits, no empty ones"
    assert "course-x" in page
    assert "widgets" not in notebook["metadata"], "no saved state left to pull widget JavaScript from a CDN"


def test_a_progress_bar_is_shown_without_the_colab_note():
    state = {
        "bar": _model("HBoxModel", children=["IPY_MODEL_label", "IPY_MODEL_progress"]),
        "label": _model("HTMLModel", value="Loading weights: 100%"),
        "progress": _model("FloatProgressModel", value=110.0, max=110.0),
    }
    notebook = _notebook(state, "bar")
    assert BUILD.static_widgets(notebook, COLAB) == 0
    page = notebook["cells"][0]["outputs"][0]["data"]["text/html"]
    assert '<progress value="110.0" max="110.0"' in page and "Colab" not in page


def test_an_upload_is_a_dead_button_and_an_empty_picture_shows_nothing():
    state = {
        "row": _model("HBoxModel", children=["IPY_MODEL_upload", "IPY_MODEL_preview"]),
        "upload": _model("FileUploadModel", description="Photo", accept="image/*"),
        "preview": _model("ImageModel", value=b"", format="png"),
    }
    notebook = _notebook(state, "row")
    assert BUILD.static_widgets(notebook, COLAB) == 1, "an upload is a control: the page links to Colab"
    page = notebook["cells"][0]["outputs"][0]["data"]["text/html"]
    assert "<button disabled>Photo</button>" in page and "<img" not in page


def test_an_unknown_widget_stops_the_build():
    notebook = _notebook({"w": _model("ColorPickerModel", value="#fff")}, "w")
    with pytest.raises(BUILD.BuildError, match="ColorPickerModel"):
        BUILD.static_widgets(notebook, COLAB)


def test_links_point_at_pages_or_at_github_and_the_badge_is_served_locally():
    pages = {Path("README.md"), Path("docs/colab.md"), Path("notebooks/01_synthetic_catalog.ipynb")}
    repo = "https://github.com/o/r"
    text = (
        f"[![Open In Colab]({BUILD.BADGE_IMAGE})](https://colab.research.google.com/x) "
        "[guide](colab.md#where-the-keys-go) [nb](../notebooks/01_synthetic_catalog.ipynb) "
        "[cli](../course_utils/cli.py#L3) [pkg](../course_utils) [web](https://example.org/a) [top](#top)"
    )
    out = BUILD.rewrite_markdown(text, Path("docs/page.md"), pages, repo, Path("docs"))
    assert "](../_static/colab-badge.svg)" in out and BUILD.BADGE_IMAGE not in out
    assert "[guide](colab.md#where-the-keys-go)" in out and "[nb](../notebooks/01_synthetic_catalog.ipynb)" in out
    assert f"[cli]({repo}/blob/main/course_utils/cli.py#L3)" in out
    assert f"[pkg]({repo}/tree/main/course_utils)" in out
    assert "[web](https://example.org/a)" in out and "[top](#top)" in out


def test_the_site_publishes_top_level_docs_and_never_the_answer_keys():
    docs = BUILD.site_docs()
    assert all(path.parent == ROOT / "docs" for path in docs)
    assert (ROOT / "docs" / "instructor_guide.md") in docs
    assert not [path for path in docs if "answers" in path.parts]
