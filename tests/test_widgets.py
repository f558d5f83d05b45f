"""Drive every panel without a browser: set the controls, run, check what it shows and keeps."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from course_utils.catalog import COLOR_HEX, default_catalog
from course_utils.errors import CourseError
from course_utils.llm import LLMResponse, OfflineAnswerer
from course_utils.rag import ImageRAG, RAGResult
from course_utils.retrieval import Retrieval
from course_utils.widgets import (
    AUTO,
    ask_panel,
    generation_panel,
    product_designer,
    provider_options,
    retrieval_explorer,
    similarity_explorer,
)

PNG_MAGIC = b"\x89PNG"


# --------------------------------------------------------------------------- product designer


def test_product_designer_renders_the_chosen_product():
    panel = product_designer()
    panel.name.value = "Star Thing"
    panel.shape.value = "star"
    panel.color.value = "purple"
    panel.pattern.value = "striped"
    panel.price.value = 42.5
    product = panel.run()
    assert product is panel.last
    assert (product.name, product.shape, product.color_name, product.pattern, product.price) == (
        "Star Thing",
        "star",
        "purple",
        "striped",
        42.5,
    )
    assert product.color == COLOR_HEX["purple"]
    assert bytes(panel.image.value).startswith(PNG_MAGIC)
    assert "Star Thing" in panel.caption.value and panel.message.value == ""


def test_product_designer_redraws_when_a_dropdown_changes():
    panel = product_designer()
    before = panel.image.value
    panel.shape.value = "triangle" if panel.shape.value != "triangle" else "circle"
    assert panel.last.shape == panel.shape.value
    assert bytes(panel.image.value) != bytes(before)


def test_product_designer_empty_name_shows_a_message_not_a_traceback():
    panel = product_designer()
    kept = panel.last
    panel.name.value = "   "
    assert panel.run() is None
    assert "name" in panel.message.value
    assert panel.last is kept  # the last valid product stays


# --------------------------------------------------------------------------- similarity explorer


def test_similarity_explorer_scores_every_image(tiny_embedder, tiny_index):
    panel = similarity_explorer(tiny_embedder, tiny_index)
    panel.query.value = "a red circle"
    panel.button.click()
    scores = panel.last
    assert isinstance(scores, np.ndarray) and scores.shape == (len(tiny_index),)
    expected = tiny_index.embeddings @ tiny_embedder.embed_texts(["a red circle"])[0]
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert bytes(panel.plot.value).startswith(PNG_MAGIC) and panel.plot.layout.display is None
    best = tiny_index.products[int(expected.argmax())].name
    assert best in panel.message.value


def test_similarity_explorer_empty_query_is_a_friendly_message(tiny_embedder, tiny_index):
    panel = similarity_explorer(tiny_embedder, tiny_index)
    panel.query.value = "  "
    assert panel.run() is None
    assert panel.last is None and bytes(panel.plot.value) == b"" and panel.plot.layout.display == "none"
    assert "Type" in panel.message.value


def test_similarity_explorer_reports_a_model_mismatch(tiny_embedder, tiny_index):
    from dataclasses import replace

    other = replace(tiny_embedder, model_id="another-model")
    panel = similarity_explorer(other, tiny_index)
    panel.query.value = "red"
    assert panel.run() is None
    assert "another-model" in panel.message.value and "Rebuild" in panel.message.value


# --------------------------------------------------------------------------- retrieval explorer


def test_retrieval_explorer_k_slider_bounds(tiny_embedder, tiny_index):
    panel = retrieval_explorer(tiny_embedder, tiny_index)
    assert (panel.k.min, panel.k.max, panel.k.value) == (1, len(tiny_index), 3)
    big = retrieval_explorer(tiny_embedder, tiny_index, k=99)
    assert big.k.value == len(tiny_index)


def test_retrieval_explorer_shows_k_results_and_follows_the_slider(tiny_embedder, tiny_index):
    panel = retrieval_explorer(tiny_embedder, tiny_index)
    panel.query.value = "red circular product"
    panel.button.click()
    assert isinstance(panel.last, Retrieval)
    assert len(panel.last) == 3 and len(panel.results.children) == 3
    scores = tiny_index.similarities(tiny_embedder.embed_texts(["red circular product"])[0])
    assert panel.last[0].product == tiny_index.products[int(scores.argmax())]
    caption = panel.results.children[0].children[1].value
    assert panel.last[0].product.name in caption and f"{panel.last[0].similarity:.3f}" in caption
    panel.k.value = 5  # moving the slider re-runs the search
    assert len(panel.last) == 5 and len(panel.results.children) == 5
    assert [h.rank for h in panel.last] == [1, 2, 3, 4, 5]


def test_retrieval_explorer_empty_query_is_a_friendly_message(tiny_embedder, tiny_index):
    panel = retrieval_explorer(tiny_embedder, tiny_index)
    panel.query.value = ""
    panel.button.click()
    assert panel.last is None and panel.results.children == ()
    assert "Type" in panel.message.value
    panel.k.value = 4  # no search yet: the slider alone does not start one
    assert panel.last is None


# --------------------------------------------------------------------------- generation panel


class PinnableLLM:
    """A test double with a provider list, recording which provider each call was pinned to."""

    pins_provider = True

    def __init__(self) -> None:
        self.calls: list[str | None] = []

    def list_providers(self):
        from types import SimpleNamespace

        return [
            SimpleNamespace(name="gemini", display_name="Gemini", state="skipped"),
            SimpleNamespace(name="offline", display_name="offline", state="configured"),
        ]

    def generate(self, prompt, system_prompt=None, provider=None):
        self.calls.append(provider)
        return LLMResponse(f"plain answer via {provider or 'auto'}", provider or "first", "m-1")

    def generate_multimodal(self, prompt, images, system_prompt=None, provider=None):
        self.calls.append(provider)
        return LLMResponse(f"answer from {len(images)} images via {provider or 'auto'}", provider or "first", "m-1")


def test_provider_dropdown_lists_auto_then_the_cascade(tiny_embedder, tiny_index):
    panel = generation_panel(ImageRAG(tiny_index, tiny_embedder, llm=PinnableLLM()))
    assert [value for _, value in panel.provider.options] == [AUTO, "gemini", "offline"]
    assert panel.provider.value == AUTO
    labels = [label for label, _ in panel.provider.options]
    assert labels[1] == "Gemini (skipped)"


def test_provider_dropdown_without_list_providers_is_auto_only(tiny_embedder, tiny_index):
    panel = generation_panel(ImageRAG(tiny_index, tiny_embedder, llm=OfflineAnswerer()))
    assert [value for _, value in panel.provider.options] == [AUTO]
    assert provider_options(None, ["groq", AUTO]) == [("auto (first provider that answers)", AUTO), ("groq", "groq")]


def test_generation_panel_answers_and_pins_the_chosen_provider(tiny_embedder, tiny_index):
    llm = PinnableLLM()
    panel = generation_panel(ImageRAG(tiny_index, tiny_embedder, llm=llm), k=2)
    panel.query.value = "What red products do you have?"
    result = panel.run()
    assert isinstance(result, RAGResult) and result.used_rag and len(result.hits) == 2
    assert llm.calls == [None]
    assert "answer from 2 images via auto" in panel.answer.value
    panel.provider.value = "offline"
    panel.button.click()
    assert llm.calls[-1] == "offline"
    assert panel.last.provider == "offline" and "m-1" in panel.answer.value


def test_generation_panel_with_the_offline_answerer(tiny_embedder, tiny_index):
    panel = generation_panel(ImageRAG(tiny_index, tiny_embedder))
    panel.query.value = "Which products are red?"
    panel.run()
    assert panel.last.provider == "offline" and "rule-based" in panel.answer.value
    assert "&lt;" not in panel.query.value  # the answer is escaped, the query untouched


def test_generation_panel_empty_question_and_errors_become_messages(tiny_embedder, tiny_index):
    class Failing(PinnableLLM):
        def generate_multimodal(self, prompt, images, system_prompt=None, provider=None):
            raise CourseError("No LLM provider answered: set a key.")

    panel = generation_panel(ImageRAG(tiny_index, tiny_embedder, llm=Failing()))
    panel.query.value = ""
    assert panel.run() is None and "Type a question" in panel.message.value
    panel.query.value = "red?"
    assert panel.run() is None and "No LLM provider answered" in panel.message.value
    assert panel.last is None


def test_generation_panel_refuses_to_pin_an_llm_without_providers(tiny_embedder, tiny_index):
    panel = generation_panel(ImageRAG(tiny_index, tiny_embedder, llm=OfflineAnswerer()), providers=["groq"])
    panel.provider.value = "groq"
    panel.query.value = "red?"
    assert panel.run() is None and "cannot be pinned" in panel.message.value


def test_a_bug_is_shown_and_raised(tiny_embedder, tiny_index):
    class Broken(PinnableLLM):
        def generate_multimodal(self, prompt, images, system_prompt=None, provider=None):
            raise ZeroDivisionError("oops")

    panel = generation_panel(ImageRAG(tiny_index, tiny_embedder, llm=Broken()))
    panel.query.value = "red?"
    with pytest.raises(ZeroDivisionError):
        panel.run()
    assert "bug" in panel.message.value and "ZeroDivisionError" in panel.message.value


# --------------------------------------------------------------------------- ask panel


def test_ask_panel_shows_images_and_both_answers(tiny_embedder, tiny_index):
    panel = ask_panel(ImageRAG(tiny_index, tiny_embedder), k=2)
    assert (panel.k.min, panel.k.max, panel.k.value) == (1, len(tiny_index), 2)
    panel.query.value = "What is the cheapest red product?"
    panel.k.value = 4
    panel.button.click()
    with_rag, without_rag = panel.last
    assert with_rag.used_rag and not without_rag.used_rag
    assert len(panel.results.children) == len(with_rag.hits) >= 1
    assert "With RAG" in panel.with_rag.value and "Without RAG" in panel.without_rag.value
    assert "offline" in panel.with_rag.value and "rule-based" in panel.without_rag.value
    catalog_names = {p.name for p in default_catalog()}
    assert any(name in panel.with_rag.value for name in catalog_names)
    assert not any(name in panel.without_rag.value for name in catalog_names)


def test_ask_panel_empty_question_is_a_friendly_message(tiny_embedder, tiny_index):
    panel = ask_panel(ImageRAG(tiny_index, tiny_embedder))
    panel.query.value = "\n"
    panel.button.click()
    assert panel.last is None and "Type a question" in panel.message.value
    assert panel.with_rag.value == "" and panel.results.children == ()


def test_plan_comparison_panel_answers_both_ways(tiny_index, tiny_embedder):
    from course_utils.rag import ImageRAG
    from course_utils.widgets import plan_comparison_panel

    panel = plan_comparison_panel(ImageRAG(tiny_index, tiny_embedder), k=2)
    panel.query.value = "What is the most expensive product?"
    plain, hybrid = panel.run()
    assert plain.plan == "none" and hybrid.plan.startswith("hybrid")
    assert hybrid.hits[0].product.name == "Tool M"  # price order, whatever the random model sees
    assert len(panel.columns["hybrid"].children) == 4
    panel.query.value = "  "
    assert panel.run() is None and "Type a question" in panel.message.value


# --------------------------------------------------------------------------- 10: what the pictures add


def test_ablation_panel_answers_side_by_side_with_scores(tiny_embedder, tiny_index):
    from course_utils.widgets import ablation_panel

    panel = ablation_panel(ImageRAG(tiny_index, tiny_embedder, metadata="shop"), k=2)
    assert panel.selected() == ["metadata", "images", "both"] and panel.metadata.value == "shop"
    panel.toggles["none"].value = True
    question = panel.questions[panel.question.value]
    results = panel.run()
    assert list(results) == ["none", "metadata", "images", "both"] == [c for c in panel.last]
    assert len(panel.columns.children) == 4
    for condition, (result, score) in results.items():
        assert result.condition == condition and result.metadata == "shop"
        assert {"exact", "precision", "recall"} <= set(score)
        column = panel.columns.children[list(results).index(condition)].value
        assert f"sent: {result.sent.images} image(s)" in column and ("✓ exact" in column) is score["exact"]
    assert results["none"][0].sent.images == 0 and results["both"][0].sent.images == 2
    assert "Known answer" in panel.message.value and all(n in panel.message.value for n in question["relevant"])


def test_ablation_panel_own_question_is_not_scored_and_needs_a_condition(tiny_embedder, tiny_index):
    from course_utils.widgets import ablation_panel

    panel = ablation_panel(ImageRAG(tiny_index, tiny_embedder))
    panel.custom.value = "anything striped?"
    panel.metadata.value = "full"
    results = panel.run()
    assert all(score is None for _, score in results.values())
    assert "not scored" in panel.columns.children[0].value
    assert all(result.metadata == "full" for result, _ in results.values())
    for toggle in panel.toggles.values():
        toggle.value = False
    assert panel.run() is None and "at least one condition" in panel.message.value


def test_ask_panel_can_send_shop_rows(tiny_embedder, tiny_index):
    panel = ask_panel(ImageRAG(tiny_index, tiny_embedder), k=2)
    panel.query.value = "red?"
    panel.metadata.value = "shop"
    with_rag, without_rag = panel.run()
    assert with_rag.metadata == "shop" and "color:" not in with_rag.prompt
    assert without_rag.condition == "none"


# --------------------------------------------------------------------------- a photo as the query


def _png_of(path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _upload_value_v8(name: str, data: bytes):
    """ipywidgets 8: a tuple of dicts, the content a memoryview."""
    import datetime as dt

    modified = dt.datetime(2026, 1, 9, 15, 58, 43, tzinfo=dt.timezone.utc)
    return (
        {"name": name, "type": "image/png", "size": len(data), "content": memoryview(data), "last_modified": modified},
    )


def _upload_value_v7(name: str, data: bytes):
    """ipywidgets 7.7 (Colab): a dict from file name to metadata and bytes."""
    metadata = {"name": name, "type": "image/png", "size": len(data), "lastModified": 1700000000000}
    return {name: {"metadata": metadata, "content": data}}


@pytest.mark.parametrize("make", [_upload_value_v8, _upload_value_v7], ids=["ipywidgets8", "ipywidgets7"])
def test_uploaded_files_reads_both_ipywidgets_formats(make):
    from course_utils.widgets import uploaded_files

    files = uploaded_files(make("shoe.png", b"\x89PNG-bytes"))
    assert files == [("shoe.png", b"\x89PNG-bytes")] and isinstance(files[0][1], bytes)
    assert uploaded_files(()) == [] and uploaded_files({}) == [] and uploaded_files(None) == []


def test_uploaded_files_keeps_every_file_in_order():
    from course_utils.widgets import uploaded_files

    v8 = _upload_value_v8("a.png", b"A") + _upload_value_v8("b.png", b"B")
    v7 = {**_upload_value_v7("a.png", b"A"), **_upload_value_v7("b.png", b"B")}
    assert uploaded_files(v8) == uploaded_files(v7) == [("a.png", b"A"), ("b.png", b"B")]


@pytest.mark.parametrize("make", [_upload_value_v8, _upload_value_v7], ids=["ipywidgets8", "ipywidgets7"])
def test_an_upload_searches_with_the_photo_and_shows_it(tiny_embedder, tiny_index, make):
    panel = retrieval_explorer(tiny_embedder, tiny_index, k=3)
    assert panel.photo.box.layout.display == "none"
    panel.photo._on_upload({"new": make("my photo.png", _png_of(tiny_index.paths[3]))})
    found = panel.last
    assert found.query_image == "my photo.png" and found[0].exact and found[0].path == tiny_index.paths[3]
    assert len(panel.results.children) == 3
    assert panel.photo.box.layout.display is None and bytes(panel.photo.preview.value).startswith(PNG_MAGIC)
    assert "my photo.png" in panel.photo.caption.value
    assert "your picture itself" in panel.results.children[0].children[1].value


def test_a_bad_upload_is_a_friendly_message_and_keeps_the_results(tiny_embedder, tiny_index):
    panel = retrieval_explorer(tiny_embedder, tiny_index)
    panel.query.value = "red"
    panel.button.click()
    before = panel.results.children
    panel.photo._on_upload({"new": _upload_value_v8("notes.txt", b"just text")})
    assert "notes.txt cannot be used: not an image" in panel.message.value
    assert panel.results.children == before and panel.photo.image is None
    assert panel.photo.box.layout.display == "none"


def test_use_as_query_walks_the_catalog_by_picture(tiny_embedder, tiny_index):
    panel = retrieval_explorer(tiny_embedder, tiny_index, k=3)
    panel.query.value = "blue"
    panel.button.click()
    second = panel.last[1]
    buttons = [card.children[-1] for card in panel.results.children]
    assert all(b.description == "Use as query" for b in buttons)
    panel.query.value = ""
    buttons[1].click()
    assert panel.last.query_image == second.path and panel.last[0].path == second.path and panel.last[0].exact
    assert panel.photo.image == second.path


def test_words_and_the_weight_slider_change_a_photo_search(tiny_embedder, tiny_index):
    panel = retrieval_explorer(tiny_embedder, tiny_index, k=len(tiny_index))
    panel.use_image(tiny_index.paths[0])
    assert panel.last.plan == "image"
    panel.query.value = "green"
    panel.button.click()
    assert panel.last.plan == "image + words" and "0.70" in panel.last.note
    panel.weight.value = 1.0  # moving the slider re-runs: the words alone now
    scores = tiny_index.similarities(tiny_embedder.embed_texts(["green"])[0])
    assert [h.path for h in panel.last] == [tiny_index.paths[i] for i in np.argsort(-scores, kind="stable")]
    panel.photo.clear_button.click()
    assert panel.photo.image is None and panel.photo.box.layout.display == "none"
    panel.button.click()
    assert panel.last.query_image is None


def test_the_ask_panel_answers_about_an_uploaded_photo(tiny_embedder, tiny_index):
    panel = ask_panel(ImageRAG(tiny_index, tiny_embedder), k=2)
    panel.photo._on_upload({"new": _upload_value_v7("mine.png", _png_of(tiny_index.paths[2]))})
    with_rag, without_rag = panel.last
    assert with_rag.query_image == "mine.png" and with_rag.question == "Do you have something like this?"
    assert "sees your photo and 2 catalog images" in panel.with_rag.value
    assert f"most like your photo is {tiny_index.products[2].name}" in panel.with_rag.value
    assert "sees your photo, no catalog" in panel.without_rag.value
    cards = panel.results.children
    assert len(cards) == 2 and cards[1].children[-1].description == "Use as query"
    cards[1].children[-1].click()
    assert panel.last[0].query_image == with_rag.hits[1].path


def test_the_ask_panel_shows_a_bad_upload_as_a_message(tiny_embedder, tiny_index):
    panel = ask_panel(ImageRAG(tiny_index, tiny_embedder))
    panel.photo._on_upload({"new": _upload_value_v8("empty.png", b"")})
    assert "empty.png cannot be used: empty file" in panel.message.value and panel.last is None


def _upload_like_the_browser(upload, name: str, data: bytes) -> None:
    """Send a real ``FileUpload`` the state its front end syncs after a file is chosen, in the installed ipywidgets."""
    import ipywidgets

    if int(ipywidgets.__version__.split(".")[0]) >= 8:  # the value itself, as JSON plus a binary buffer
        file = {"name": name, "type": "image/png", "size": len(data), "content": memoryview(data)}
        upload.set_state({"value": [{**file, "last_modified": 1700000000000}]})
    else:  # 7.x: metadata and data, then a counter whose change computes value
        metadata = {"name": name, "type": "image/png", "size": len(data), "lastModified": 1700000000000}
        upload.set_state({"metadata": [metadata], "data": [memoryview(data)], "_counter": upload._counter + 1})


def test_the_real_upload_control_drives_the_panel(tiny_embedder, tiny_index):
    panel = retrieval_explorer(tiny_embedder, tiny_index, k=2)
    _upload_like_the_browser(panel.photo.upload, "catalog copy.png", _png_of(tiny_index.paths[5]))
    assert panel.last is not None and panel.last.query_image == "catalog copy.png"
    assert panel.last[0].exact and panel.last[0].path == tiny_index.paths[5]


def test_the_same_file_chosen_again_searches_again(tiny_embedder, tiny_index):
    panel = retrieval_explorer(tiny_embedder, tiny_index, k=2)
    data = _png_of(tiny_index.paths[1])
    _upload_like_the_browser(panel.photo.upload, "again.png", data)
    first = panel.last
    panel.photo.clear_button.click()
    _upload_like_the_browser(panel.photo.upload, "again.png", data)
    assert panel.last is not first and panel.last.query_image == "again.png" and panel.photo.image is not None
