"""The offline answerer looks at the pictures: measured accuracy, answers from pixels only, rows unchanged."""

from __future__ import annotations

import pytest

from course_utils.catalog import default_catalog, generate_catalog, render_catalog, render_product
from course_utils.llm import OFFLINE_LABEL, AttributeReader, OfflineAnswerer, Seen, default_reader, get_cascade
from course_utils.llm.offline import answer_offline
from course_utils.prompts import build_context, build_rag_prompt, context_entry, id_entry

CATALOG = default_catalog()


@pytest.mark.parametrize(
    "products, floor",
    [(CATALOG, 0.9), (generate_catalog(40, seed=0), 0.8)],
    ids=["default catalog", "generated 40"],
)
def test_per_attribute_accuracy_on_catalog_pictures(tmp_path, products, floor):
    paths = render_catalog(products, tmp_path)
    report = default_reader().accuracy(products, paths)
    print(report)  # the figures, for the record
    assert report["n"] == len(products) and report["model"].startswith("mini-clip@")
    for attribute in ("color", "shape", "pattern"):
        assert report[attribute] >= floor, f"{attribute}: {report[attribute]:.2f} < {floor} ({report['errors']})"


def test_the_reader_names_what_it_sees_and_remembers_it(tmp_path):
    reader = AttributeReader()
    product = CATALOG[1]  # Widget B, a blue striped square
    path = render_catalog([product], tmp_path)[0]
    assert reader.read([path]) == [Seen("blue", "square", "striped")]
    assert reader.read([path.read_bytes(), render_product(product)]) == [Seen("blue", "square", "striped")] * 2
    assert Seen("orange", "diamond", "striped").describe() == "an orange diamond, striped"


def _ids_prompt(question, products):
    context = build_context(id_entry(i, p) for i, p in enumerate(products, 1))
    return build_rag_prompt(question, context, len(products))


def test_images_condition_answers_from_the_pixels_it_was_sent(tmp_path):
    """The picture shows a blue square; nothing in the prompt says so. The answer follows the picture."""
    blue, red = CATALOG[1], CATALOG[0]
    # the same names, the pictures swapped: only the pixels can tell which is which
    paths = render_catalog([red, blue], tmp_path)
    swapped = [paths[1], paths[0]]  # image 1 (entry "Widget A") now shows the blue square
    answer = answer_offline(_ids_prompt("What blue products do you have?", [red, blue]), swapped)
    assert answer.startswith(OFFLINE_LABEL)
    assert "Widget A (seen in image 1: a blue square, striped)" in answer and "Widget B" not in answer
    assert "cannot read the name or price printed" in answer


def test_images_condition_cannot_answer_prices_and_says_why(tmp_path):
    paths = render_catalog(CATALOG[:3], tmp_path)
    answer = answer_offline(_ids_prompt("What is the cheapest product?", CATALOG[:3]), paths)
    assert "I cannot check the price" in answer and "cannot read the price printed" in answer
    assert not any(p.name in answer for p in CATALOG), "no product is named as the cheapest"


def test_rows_without_the_look_and_no_pictures_say_what_they_cannot_check():
    context = build_context(context_entry(i, p, 0.3, "shop") for i, p in enumerate(CATALOG[:3], 1))
    answer = answer_offline(build_rag_prompt("What red products do you have?", context, 0))
    assert "I cannot check the colour" in answer and "no pictures were attached" in answer
    assert not any(p.name in answer for p in CATALOG)


class NoEyes:
    model_id = "none"

    def read(self, images):
        raise AssertionError("rows that state the look must be answered without looking")


@pytest.mark.parametrize(
    "question",
    ["What red products do you have?", "Show me the cheapest circular product.", "Do you have a black hexagon?"],
)
def test_full_rows_are_answered_as_before_even_with_pictures(tmp_path, question):
    paths = render_catalog(CATALOG[:3], tmp_path)
    context = build_context(context_entry(i, p, 0.3) for i, p in enumerate(CATALOG[:3], 1))
    prompt = build_rag_prompt(question, context, 3)
    with_pictures = OfflineAnswerer(reader=NoEyes()).generate_multimodal(prompt, paths).text
    assert with_pictures == answer_offline(prompt), "the answer from full rows does not change"
    assert "seen in image" not in with_pictures


def test_the_cascade_offline_step_sees_encoded_images(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    paths = render_catalog(CATALOG[:2], tmp_path)
    response = get_cascade(verbose=False).generate_multimodal(
        _ids_prompt("Which products have stripes?", CATALOG[:2]), paths
    )
    assert response.provider == "offline" and response.model == "rule-based"
    assert "Widget B (seen in image 2: a blue square, striped)" in response.text and "Widget A" not in response.text


def test_pictures_follow_the_entries_the_prompt_names(tmp_path):
    """When an image is missing, the prompt says which entries the others show; the reading follows it."""
    products = CATALOG[:3]  # Widget A (red circle), Widget B (blue square), Gadget X (green triangle)
    paths = render_catalog(products, tmp_path)
    context = build_context(id_entry(i, p) for i, p in enumerate(products, 1))
    prompt = build_rag_prompt("Which products are green?", context, 2, image_ranks=[2, 3])
    answer = answer_offline(prompt, paths[1:])
    assert "Gadget X (seen in image 2: a green triangle, solid)" in answer
    assert "Widget A" not in answer and "Widget B" not in answer
