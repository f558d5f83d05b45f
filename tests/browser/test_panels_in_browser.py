"""The notebooks' interactive panels, used the way a student uses them: in a notebook, in Chromium.

The tests run in each front end that speaks the installed ipywidgets' protocol (JupyterLab 4 for
ipywidgets 8, classic Notebook 6 for Colab's ipywidgets 7; see conftest.py). Each test opens a
notebook, runs all its cells from the menu, then types into the panel and clicks its button in the
page. It checks what the page shows: result images that actually load, their captions, the
answers, the friendly message. A panel that works in a kernel test but renders blank, or whose
button does nothing in the browser, fails here.

Offline (mini-CLIP + the offline answerer), like the notebook tests. Screenshots of the panels go
to ``test-artifacts/browser/`` (git-ignored).
"""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser

RESULT_IMAGES = ".course-results img"
SLIDER_HANDLE = ".noUi-handle, .ui-slider-handle"  # ipywidgets 8 (noUiSlider) or 7 (jQuery UI)


def _mark_stale(panel) -> None:
    """Tag the images on show now, so a test can tell them from the ones its click produces."""
    panel.locator(RESULT_IMAGES).evaluate_all("els => els.forEach(e => { e.dataset.stale = '1'; })")


def _wait_for_new_images(panel, count: int | None = None) -> int:
    """Wait until the results are all new images (``count`` of them if given); return how many."""
    from playwright.sync_api import expect

    fresh = panel.locator(f"{RESULT_IMAGES}:not([data-stale])")
    expect(fresh.first, "no new result image appeared: did the click reach the kernel?").to_be_visible()
    expect(panel.locator(f"{RESULT_IMAGES}[data-stale]"), "old results are still on show").to_have_count(0)
    if count is not None:
        expect(fresh, f"expected {count} result images").to_have_count(count)
    return fresh.count()


def _assert_images_load(images) -> None:
    """Every image decoded to real pixels and takes up room on the page (not a broken icon)."""
    sizes = images.evaluate_all(
        """els => Promise.all(els.map(e => e.complete ? null
                   : new Promise(done => { e.onload = e.onerror = done; })))
             .then(() => els.map(e => [e.naturalWidth, e.naturalHeight,
                                       Math.round(e.getBoundingClientRect().width)]))"""
    )
    assert sizes, "no result images on the page"
    broken = [size for size in sizes if min(size) <= 0]
    assert not broken, f"{len(broken)} of {len(sizes)} result images did not load: {sizes}"


def _captions(panel) -> list[str]:
    return [text.strip() for text in panel.locator(".course-results .widget-html").all_inner_texts()]


def test_ask_panel_shows_images_and_answers_in_the_browser(notebook_page):
    from playwright.sync_api import expect

    notebook_page.open_notebook("05_image_rag_pipeline.ipynb")
    notebook_page.run_all()
    panel = notebook_page.panel("course-ask-panel")
    question = panel.locator(".widget-text input").first
    ask = panel.locator("button", has_text=re.compile(r"^\s*Ask\s*$"))
    with_rag, without_rag = panel.locator(".course-answer-with-rag"), panel.locator(".course-answer-without-rag")

    _mark_stale(panel)
    question.fill("What red products do you have?")
    ask.click()
    shown = _wait_for_new_images(panel)
    _assert_images_load(panel.locator(RESULT_IMAGES))
    captions = _captions(panel)
    assert len(captions) == shown, captions
    assert captions[0].startswith("#1 Widget A"), f"the red circle should come first, the page shows {captions}"

    expect(with_rag).to_contain_text(f"With RAG (sees {shown} catalog images)")
    expect(with_rag).to_contain_text("Widget A")  # the answer names the red product it was shown
    expect(without_rag).to_contain_text("Without RAG")
    assert "Widget A" not in without_rag.inner_text(), "the blind answer cannot know the shop's products"
    expect(panel).not_to_contain_text("Type a question first")
    notebook_page.screenshot(panel, "05_ask_panel.png")

    question.fill("   ")
    ask.click()
    expect(panel).to_contain_text("Type a question first")
    assert not notebook_page.widget_errors()


def test_retrieval_explorer_follows_the_k_slider_in_the_browser(notebook_page):
    from playwright.sync_api import expect

    notebook_page.open_notebook("03_image_retrieval.ipynb")
    notebook_page.run_all()
    panel = notebook_page.panel("course-retrieval-explorer")
    readout = panel.locator(".widget-readout").first
    k_before = int(readout.inner_text())

    _mark_stale(panel)
    panel.locator(".widget-text input").first.fill("red circular product")
    panel.locator("button", has_text=re.compile(r"^\s*Search\s*$")).click()
    _wait_for_new_images(panel, k_before)
    _assert_images_load(panel.locator(RESULT_IMAGES))
    assert _captions(panel)[0].startswith("#1 Widget A"), _captions(panel)

    # move the slider two steps with the keyboard, as a student can
    key, k_after = ("ArrowLeft", k_before - 2) if k_before > 2 else ("ArrowRight", k_before + 2)
    handle = panel.locator(SLIDER_HANDLE).first
    handle.focus()
    _mark_stale(panel)
    handle.press(key)
    handle.press(key)
    expect(readout).to_have_text(str(k_after))
    _wait_for_new_images(panel, k_after)
    _assert_images_load(panel.locator(RESULT_IMAGES))
    assert len(_captions(panel)) == k_after
    assert _captions(panel)[0].startswith("#1 Widget A"), _captions(panel)
    notebook_page.screenshot(panel, "03_retrieval_explorer.png")
    assert not notebook_page.widget_errors()


def _choose_file(page, upload, path) -> None:
    """Answer the browser's file chooser, as a student picks a file: the upload button opens it
    (its ``<input type=file>`` is hidden, or not in the page at all)."""
    with page.expect_file_chooser() as opened:
        upload.click()
    opened.value.set_files(str(path))


def test_retrieval_explorer_searches_with_an_uploaded_photo_in_the_browser(notebook_page, tmp_path):
    """The real file chooser: a catalog picture is uploaded, shown as the query and found; a text file is refused."""
    from playwright.sync_api import expect

    from course_utils.catalog import default_catalog, render_catalog

    picture = render_catalog(default_catalog(), tmp_path / "catalog")[0]  # widget_a.png, the pixels the index holds
    not_a_picture = tmp_path / "notes.txt"
    not_a_picture.write_text("a shopping list, not a photo")

    notebook_page.open_notebook("03_image_retrieval.ipynb")
    notebook_page.run_all()
    panel = notebook_page.panel("course-retrieval-explorer")
    query_image = panel.locator(".course-query-image")
    upload = panel.locator(".widget-upload")
    expect(upload).to_have_count(1)
    panel.locator(".widget-text input").first.fill("")  # the picture alone: words would change it

    _mark_stale(panel)
    _choose_file(notebook_page.page, upload, picture)
    shown = _wait_for_new_images(panel)
    _assert_images_load(panel.locator(RESULT_IMAGES))
    captions = _captions(panel)
    assert captions[0].startswith("#1 Widget A") and "your picture itself" in captions[0], captions
    expect(query_image).to_be_visible()
    expect(query_image).to_contain_text("widget_a.png")
    _assert_images_load(query_image.locator("img"))
    expect(panel.locator("button", has_text="Use as query")).to_have_count(shown)
    notebook_page.screenshot(panel, "03_search_with_a_photo.png")

    _mark_stale(panel)
    panel.locator("button", has_text="Use as query").nth(1).click()  # walk on to the second result
    _wait_for_new_images(panel)
    assert "your picture itself" in _captions(panel)[0], _captions(panel)

    _choose_file(notebook_page.page, upload, not_a_picture)
    expect(panel).to_contain_text("The query image notes.txt cannot be used: not an image")
    assert "your picture itself" in _captions(panel)[0]  # the last good results stay
    assert not notebook_page.widget_errors()


def test_ask_panel_answers_about_an_uploaded_photo_in_the_browser(notebook_page, tmp_path):
    """The ask panel with a photo and no words: "Do you have something like this?", answered from the catalog."""
    from playwright.sync_api import expect

    from course_utils.catalog import default_catalog, render_catalog

    picture = render_catalog(default_catalog(), tmp_path / "catalog")[3]  # gadget_y.png

    notebook_page.open_notebook("05_image_rag_pipeline.ipynb")
    notebook_page.run_all()
    panel = notebook_page.panel("course-ask-panel")
    with_rag, without_rag = panel.locator(".course-answer-with-rag"), panel.locator(".course-answer-without-rag")
    panel.locator(".widget-text input").first.fill("")

    _mark_stale(panel)
    _choose_file(notebook_page.page, panel.locator(".widget-upload"), picture)
    _wait_for_new_images(panel)
    _assert_images_load(panel.locator(RESULT_IMAGES))
    _assert_images_load(panel.locator(".course-query-image img"))
    assert _captions(panel)[0].startswith("#1 Gadget Y"), _captions(panel)
    expect(with_rag).to_contain_text("sees your photo and")
    expect(with_rag).to_contain_text("most like your photo is Gadget Y")
    expect(without_rag).to_contain_text("sees your photo, no catalog")
    notebook_page.screenshot(panel, "05_ask_with_a_photo.png")
    assert not notebook_page.widget_errors()
