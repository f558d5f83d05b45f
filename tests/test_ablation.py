"""The ablation: conditions that change one thing, questions with known answers, scores, the shape.

The conditions are checked with a recording LLM (what each one sends); the scores and the
expected shape with the offline answerer on the bundled mini-CLIP, as CI and the notebook run it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from course_utils import rag as rag_module
from course_utils.ablation import (
    VISUAL_TYPES,
    ablation_questions,
    expected_shape,
    first_per_type,
    format_table,
    run_ablation,
    score_answer,
)
from course_utils.catalog import default_catalog, generate_catalog, load_catalog
from course_utils.errors import CourseError
from course_utils.llm import LLMResponse, Usage
from course_utils.prompts import CONDITIONS, CONTEXT_CLOSE, CONTEXT_OPEN, EVIDENCE, system_prompt
from course_utils.rag import ImageRAG, Sent

ROOT = Path(__file__).resolve().parents[1]
CATALOG = default_catalog()


class RecordingLLM:
    """Records every call; answers with a fixed text and, optionally, a usage report."""

    pins_provider = True

    def __init__(self, usage=None, max_images=None):
        self.calls, self.usage = [], usage
        if max_images is not None:
            self.max_images = max_images

    def generate(self, prompt, system_prompt=None, provider=None, model=None):
        self.calls.append({"prompt": prompt, "images": None, "system": system_prompt, "pin": (provider, model)})
        return LLMResponse("text answer", provider or "Fake", model or "fake-1", usage=self.usage)

    def generate_multimodal(self, prompt, images, system_prompt=None, provider=None, model=None):
        self.calls.append({"prompt": prompt, "images": list(images), "system": system_prompt, "pin": (provider, model)})
        return LLMResponse("image answer", provider or "Fake", model or "fake-1", usage=self.usage)


# --------------------------------------------------------------------------- one thing at a time


def test_one_system_prompt_with_one_sentence_that_differs():
    prompts = {c: system_prompt(c) for c in CONDITIONS}
    stems = {p.replace(EVIDENCE[c], "<evidence>") for c, p in prompts.items()}
    assert len(stems) == 1, "everything but the evidence sentence is shared"
    assert prompts["random"] == prompts["both"], "the random control must look like 'both' to the model"
    assert len(set(prompts.values())) == len(CONDITIONS) - 1
    with pytest.raises(CourseError, match="Unknown condition"):
        system_prompt("pictures")


@pytest.mark.parametrize("condition", CONDITIONS)
def test_each_condition_sends_what_it_says(tiny_index, tiny_embedder, condition):
    llm = RecordingLLM()
    rag = ImageRAG(tiny_index, tiny_embedder, llm, metadata="shop")
    result = rag.ask("What red products do you have?", condition, k=3)
    call = llm.calls[-1]
    assert call["system"] == system_prompt(condition) == result.system_prompt
    assert result.condition == condition and result.metadata == "shop"
    prompt = call["prompt"]
    n_images = len(call["images"] or [])
    assert result.sent.images == n_images and result.sent.prompt_chars == len(prompt) + len(call["system"])
    expected_images = {"none": 0, "metadata": 0, "images": 3, "both": 3, "all-images": len(tiny_index), "random": 3}
    assert n_images == expected_images[condition]
    if condition == "none":
        assert CONTEXT_OPEN not in prompt and call["images"] is None and result.hits == ()
        return
    inside = prompt[prompt.index(CONTEXT_OPEN) : prompt.index(CONTEXT_CLOSE)]
    has_rows = condition in ("metadata", "both", "random")
    assert ("price: $" in inside) is has_rows, "rows (with prices) travel only where the condition sends them"
    assert "color:" not in inside and "shape:" not in inside and "pattern:" not in inside  # the shop view
    names = [line.split("] ", 1)[1] for line in inside.splitlines()[1:]]
    if not has_rows:  # the images' ids, and nothing else
        assert names == [f"name: {h.product.name}" for h in result.hits]
    if call["images"]:
        assert call["images"] == [h.path for h in result.hits], "image i is entry [i]"


def test_full_view_rows_carry_the_look_and_both_is_todays_rag(tiny_index, tiny_embedder):
    llm = RecordingLLM()
    rag = ImageRAG(tiny_index, tiny_embedder, llm)
    result = rag.answer("Which products are striped?", k=2)
    assert result.condition == "both" and result.metadata == "full"
    assert all(f"color: {h.product.color_name}" in llm.calls[-1]["prompt"] for h in result.hits)
    with_rag, without = rag.compare("Which products are striped?", k=2)
    assert llm.calls[-1]["system"].replace(EVIDENCE["none"], "") == llm.calls[-2]["system"].replace(
        EVIDENCE["both"], ""
    ), "compare changes the evidence, not the instructions"
    assert llm.calls[-1]["pin"] == ("Fake", "fake-1") and without.condition == "none"


def test_random_is_seeded_per_question(tiny_index, tiny_embedder):
    def products(seed, question="red?"):
        rag = ImageRAG(tiny_index, tiny_embedder, RecordingLLM(), seed=seed)
        return [h.product.name for h in rag.ask(question, "random", k=3).hits]

    assert products(0) == products(0)
    assert len(set(products(0))) == 3
    assert len({tuple(products(seed)) for seed in range(6)}) > 1, "another seed, other products"


def test_all_images_is_refused_above_the_limit(tiny_index, tiny_embedder, monkeypatch):
    rag = ImageRAG(tiny_index, tiny_embedder, RecordingLLM())
    assert len(rag.ask("red?", "all-images").hits) == len(tiny_index)
    monkeypatch.setattr(rag_module, "ALL_IMAGES_LIMIT", len(tiny_index) - 1)
    with pytest.raises(CourseError, match=f"has {len(tiny_index)}: the course stops at {len(tiny_index) - 1}"):
        rag.ask("red?", "all-images")
    monkeypatch.undo()
    small = ImageRAG(tiny_index, tiny_embedder, RecordingLLM(max_images=3))
    with pytest.raises(CourseError, match="at most 3 per request"):
        small.ask("red?", "all-images")


def test_bad_condition_or_view_is_one_clear_error(tiny_index, tiny_embedder):
    rag = ImageRAG(tiny_index, tiny_embedder, RecordingLLM())
    with pytest.raises(CourseError, match="Unknown condition 'pixels'"):
        rag.ask("red?", "pixels")
    with pytest.raises(CourseError, match="Unknown metadata view 'shop-ish'"):
        rag.ask("red?", "both", metadata="shop-ish")
    with pytest.raises(CourseError, match="Unknown metadata view"):
        ImageRAG(tiny_index, tiny_embedder, metadata="tiny")


def test_what_was_sent_records_image_tokens_where_usage_is_reported():
    assert Sent.measure(0, 400, None).image_tokens_source == "no images"
    assert Sent.measure(3, 400, None).to_dict() == {
        "images": 3,
        "prompt_chars": 400,
        "prompt_tokens": None,
        "image_tokens": None,
        "image_tokens_source": "not reported",
    }
    reported = Sent.measure(3, 400, Usage(prompt_tokens=874, image_tokens=774))
    assert (reported.image_tokens, reported.image_tokens_source) == (774, "reported")
    estimated = Sent.measure(3, 400, Usage(prompt_tokens=355))
    assert (estimated.image_tokens, estimated.image_tokens_source) == (255, "estimated")


# --------------------------------------------------------------------------- questions and scores


def test_questions_carry_the_catalog_truth():
    questions = ablation_questions(CATALOG)
    by_query = {q["query"]: q for q in questions}
    assert {q["type"] for q in questions} == {
        "color",
        "shape",
        "pattern",
        "combination",
        "price",
        "category",
        "absent",
    }
    assert by_query["What red products do you have?"]["relevant"] == ["Widget A"]
    assert sorted(by_query["Which products have stripes?"]["relevant"]) == ["Tool N", "Widget B"]
    assert sorted(by_query["Do you have anything shaped like a circle?"]["relevant"]) == [
        "Gadget Y",
        "Widget A",
        "Widget C",
    ]
    assert by_query["What is the cheapest product?"]["relevant"] == ["Gadget X"]
    assert by_query["What is the most expensive product?"]["relevant"] == ["Tool M"]
    assert by_query["Which products cost under $9?"]["relevant"] == ["Gadget X"]
    assert by_query["Which products cost under $12?"]["relevant"] == ["Gadget X", "Widget C"]
    assert sorted(by_query["Show me your tools."]["relevant"]) == ["Tool M", "Tool N"]
    assert by_query["Do you have a pink square?"]["relevant"] == ["Gadget Z"]
    absent = [q for q in questions if q["type"] == "absent"]
    assert absent and all(q["relevant"] == [] for q in absent)
    assert "What black products do you have?" in {q["query"] for q in absent}
    for q in questions:  # every listed product really answers its question, by the labels
        if q["type"] == "color":
            color = q["query"].split()[1]
            assert sorted(q["relevant"]) == sorted(p.name for p in CATALOG if p.color_name == color)


def test_questions_scale_to_a_generated_catalog_and_per_type_cuts_them():
    products = generate_catalog(40, seed=0)
    questions = ablation_questions(products)
    names = {p.name for p in products}
    assert all(set(q["relevant"]) <= names for q in questions)
    assert {q["type"] for q in questions} >= set(VISUAL_TYPES) | {"price", "category"}
    short = first_per_type(questions, 1)
    assert sorted(q["type"] for q in short) == sorted({q["type"] for q in questions})
    with pytest.raises(CourseError):
        first_per_type(questions, 0)


def test_scores_by_the_products_an_answer_names():
    perfect = score_answer("You can buy Widget A ($12.99).", ["Widget A"], CATALOG)
    assert perfect == {"named": ["Widget A"], "invented": [], "exact": True, "precision": 1.0, "recall": 1.0}
    half = score_answer("Widget A and Gadget Z are red.", ["Widget A"], CATALOG)
    assert (half["exact"], half["precision"], half["recall"]) == (False, 0.5, 1.0)
    missed = score_answer("Striped: Widget B.", ["Widget B", "Tool N"], CATALOG)
    assert (missed["exact"], missed["precision"], missed["recall"]) == (False, 1.0, 0.5)
    invented = score_answer("Try our Widget Pro.", ["Widget A"], CATALOG)
    assert invented["invented"] == ["Widget Pro"] and invented["precision"] == 0.0 and not invented["exact"]
    refusal = score_answer("We do not sell that.", [], CATALOG)
    assert refusal["exact"] and refusal["precision"] == refusal["recall"] == 1.0
    silent = score_answer("I cannot tell.", ["Widget A"], CATALOG)
    assert (silent["exact"], silent["precision"], silent["recall"]) == (False, 1.0, 0.0)


# --------------------------------------------------------------------------- the measured shape


@pytest.fixture(scope="module")
def mini_rag():
    from course_utils.embeddings import BUNDLED_MODEL_DIR, load_clip
    from course_utils.indexing import build_index
    from course_utils.workspace import catalog_images

    embedder = load_clip(str(BUNDLED_MODEL_DIR), device="cpu")
    return embedder, build_index(CATALOG, catalog_images(CATALOG), embedder)


def test_shop_rows_ablation_shows_what_the_pictures_add(mini_rag):
    embedder, index = mini_rag
    report = run_ablation(ImageRAG(index, embedder, metadata="shop"))
    assert [c["condition"] for c in report["conditions"]] == list(CONDITIONS)
    for entry in report["conditions"]:
        assert {"accuracy", "precision", "recall", "invented_rate", "n", "by_type", "sent"} <= set(entry)
        assert entry["n"] == report["n_questions"] == len(report["questions"])
        for cell in entry["by_type"].values():
            assert set(cell) == {"accuracy", "precision", "recall", "invented_rate", "n"}
    checks = expected_shape(report)
    assert len(checks) == 4 and all(check["holds"] for check in checks), checks
    by = {c["condition"]: c for c in report["conditions"]}
    assert by["none"]["sent"]["images"] == 0 and by["all-images"]["sent"]["images"] == len(CATALOG)
    assert by["none"]["invented_rate"] == 0.0, "the offline answerer never invents a product"
    assert report["seeing"]["color"] == report["seeing"]["shape"] == report["seeing"]["pattern"] == 1.0
    table = format_table(report)
    assert "images beats metadata on visual questions (accuracy): holds" in table
    json.dumps(report)  # the report is plain JSON


def test_full_rows_answer_looks_without_pictures(mini_rag):
    """With rows that describe the look, a text-only RAG scores what Image RAG scores on looks."""
    embedder, index = mini_rag
    report = run_ablation(ImageRAG(index, embedder), conditions=("metadata", "both"))
    by = {c["condition"]: c["by_type"] for c in report["conditions"]}
    for kind in VISUAL_TYPES:
        assert by["metadata"][kind] == by["both"][kind]
    assert "holds" not in format_table(report), "the expected shape is a claim about shop rows only"


def test_a_failing_call_is_recorded_not_scored(tiny_index, tiny_embedder):
    class Flaky(RecordingLLM):
        def generate(self, prompt, system_prompt=None, provider=None, model=None):
            raise CourseError("No LLM provider answered: quota")

    report = run_ablation(ImageRAG(tiny_index, tiny_embedder, Flaky()), first_per_type(ablation_questions(CATALOG), 1))
    by = {c["condition"]: c for c in report["conditions"]}
    assert by["none"]["n"] == 0 and by["none"]["errors"] == report["n_questions"]
    assert by["both"]["n"] == report["n_questions"] and by["both"]["errors"] == 0
    assert "failed" in format_table(report)


def test_every_later_call_is_pinned_to_the_first_answer(tiny_index, tiny_embedder):
    llm = RecordingLLM()
    run_ablation(ImageRAG(tiny_index, tiny_embedder, llm), first_per_type(ablation_questions(CATALOG), 1))
    assert llm.calls[0]["pin"] == (None, None) and llm.calls[0]["images"], "'both' answers first, unpinned"
    assert all(call["pin"] == ("Fake", "fake-1") for call in llm.calls[1:])


def test_unknown_products_in_a_question_file_are_refused(tiny_index, tiny_embedder):
    rag = ImageRAG(tiny_index, tiny_embedder, RecordingLLM())
    with pytest.raises(CourseError, match="'Widget Q', not in the catalog"):
        run_ablation(rag, [{"query": "red?", "relevant": ["Widget Q"], "type": "color"}])
    with pytest.raises(CourseError, match="at least one condition"):
        run_ablation(rag, conditions=())


# --------------------------------------------------------------------------- the kept runs


def test_the_generated_catalog_of_the_kept_runs_is_reproducible():
    kept = load_catalog(ROOT / "docs" / "benchmarks" / "catalog_40.json")
    assert kept == generate_catalog(40, seed=0) and len(kept) == 40
    assert generate_catalog(40, seed=1) != kept
    assert len({p.name for p in kept}) == len({p.price for p in kept}) == 40


@pytest.mark.parametrize("name", ["ablation_default.json", "ablation_40.json"])
def test_kept_runs_show_the_expected_shape(name):
    report = json.loads((ROOT / "docs" / "benchmarks" / name).read_text(encoding="utf-8"))
    assert report["metadata"] == "shop" and report["llm"] == [{"provider": "offline", "model": "rule-based"}]
    assert all(check["holds"] for check in expected_shape(report))
    assert min(report["seeing"][a] for a in ("color", "shape", "pattern")) >= 0.8
