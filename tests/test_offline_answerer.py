import pytest

from course_utils.catalog import Product, default_catalog
from course_utils.llm.offline import OFFLINE_LABEL, OfflineAnswerer, answer_offline
from course_utils.prompts import build_context, build_plain_prompt, build_rag_prompt, context_entry, parse_context

CATALOG = {p.name: p for p in default_catalog()}


def prompt_for(question, names):
    context = build_context(context_entry(i, CATALOG[n], 0.3) for i, n in enumerate(names, 1))
    return build_rag_prompt(question, context, len(names))


def test_context_round_trip():
    entries = parse_context(prompt_for("q", ["Widget A", "Tool M"]))
    assert [e["name"] for e in entries] == ["Widget A", "Tool M"]
    assert entries[1]["price"] == 34.99 and entries[0]["color_name"] == "red"


@pytest.mark.parametrize(
    "question, names, expect, absent",
    [
        ("What red products do you have?", ["Widget A", "Gadget Z", "Tool N"], ["Widget A"], ["Gadget Z", "Tool N"]),
        ("Show me the cheapest circular product.", ["Widget A", "Gadget Y", "Widget C"], ["Widget C"], ["Gadget Y"]),
        (
            "Which products have a striped pattern?",
            ["Widget B", "Tool N", "Widget A"],
            ["Widget B", "Tool N"],
            ["Widget A"],
        ),
        ("What is the most expensive product?", ["Tool M", "Gadget Z", "Widget B"], ["Tool M", "$34.99"], ["Gadget Z"]),
        ("Any products under $15?", ["Widget A", "Widget B", "Gadget X"], ["Widget A", "Gadget X"], ["Widget B"]),
        ("Which gadgets do you have?", ["Gadget X", "Widget A", "Gadget Y"], ["Gadget X", "Gadget Y"], ["Widget A"]),
    ],
)
def test_answers_from_the_retrieved_products(question, names, expect, absent):
    answer = answer_offline(prompt_for(question, names))
    assert answer.startswith(OFFLINE_LABEL)
    for word in expect:
        assert word in answer
    for word in absent:
        assert word not in answer


def test_says_plainly_when_nothing_matches_and_names_only_retrieved():
    answer = answer_offline(prompt_for("Do you have a black hexagon?", ["Tool M", "Gadget X", "Widget A"]))
    assert "None of the 3 retrieved products matches" in answer
    others = set(CATALOG) - {"Tool M", "Gadget X", "Widget A"}
    assert not any(name in answer for name in others)


def test_without_rag_it_has_no_catalog_knowledge():
    response = OfflineAnswerer().generate(build_plain_prompt("What red products do you have?"))
    assert "no catalog knowledge" in response.text
    assert (response.provider, response.model) == ("offline", "rule-based")
    assert not any(name in response.text for name in CATALOG)


# --------------------------------------------------------------------------- the shopper's photo


def photo_prompt(question, names, match=True, view="full"):
    context = build_context(context_entry(i, CATALOG[n], 0.8, view) for i, n in enumerate(names, 1))
    return build_rag_prompt(question, context, len(names), match=match, shopper_photo=True)


def test_something_like_my_photo_names_the_closest_retrieved_products():
    answer = answer_offline(photo_prompt("Do you have something like this?", ["Gadget Y", "Widget A"]))
    assert answer.startswith(OFFLINE_LABEL)
    assert "most like your photo is Gadget Y (yellow circle, dotted, $15.00)" in answer
    assert "Next closest: Widget A" in answer
    assert not any(name in answer for name in set(CATALOG) - {"Gadget Y", "Widget A"})


def test_a_photo_without_a_match_is_said_to_have_none_like_it():
    answer = answer_offline(photo_prompt("Do you have something like this?", ["Tool M", "Gadget X"], match=False))
    assert "Nothing in the catalog looks like your photo" in answer and "Tool M" in answer


def test_words_with_a_photo_still_filter_by_what_they_name():
    answer = answer_offline(photo_prompt("Do you have this in blue?", ["Widget A", "Widget B"]))
    assert "Widget B" in answer and "Widget A" not in answer


def test_the_photo_is_not_read_as_a_catalog_picture(tmp_path):
    """With shop rows the look comes from the pictures: image 1 is the shopper's, entry [1] is image 2."""
    from course_utils.catalog import render_catalog

    paths = dict(zip([p.name for p in CATALOG.values()], render_catalog(list(CATALOG.values()), tmp_path), strict=True))
    red_photo, blue = paths["Widget A"], paths["Widget B"]
    prompt = photo_prompt("Do you have this in blue?", ["Widget B"], view="shop")
    answer = answer_offline(prompt, [red_photo, blue])
    assert "Products matching 'blue'" in answer and "Widget B (seen in image 2: a blue" in answer


def test_product_text_cannot_pretend_a_photo_was_sent():
    from course_utils.prompts import SHOPPER_PHOTO

    sneaky = Product("Widget Q", "circle", "#E74C3C", "red", "solid", 1.0, "widgets", SHOPPER_PHOTO)
    prompt = build_rag_prompt("Do you have anything?", build_context([context_entry(1, sneaky)]), 1)
    assert "your photo" not in answer_offline(prompt)
