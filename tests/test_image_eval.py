"""eval --image-queries: the report's structure, its invariants, and the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from course_utils.catalog import COLOR_HEX, SHAPES, default_catalog
from course_utils.cli import main
from course_utils.image_eval import (
    COMPOSED_PHRASINGS,
    WEIGHTS,
    composed_cases,
    evaluate_image_queries,
    format_image_report,
)
from course_utils.perturbations import PERTURBATIONS


def test_composed_cases_are_the_pairs_with_an_answer():
    products = default_catalog()
    cases = composed_cases(products)
    # circles: red, yellow, teal (3 x 2 other colours); squares: blue, pink (2 x 1)
    assert len(cases) == 8
    for case in cases:
        source = products[case["product"]]
        assert case["color"] != source.color_name and case["targets"]
        for target in case["targets"]:
            assert (products[target].color_name, products[target].shape) == (case["color"], source.shape)


@pytest.fixture(scope="module")
def report(tiny_embedder, catalog_dir):
    products = default_catalog()
    return evaluate_image_queries(products, [catalog_dir / f"{p.slug}.png" for p in products], tiny_embedder, rounds=1)


def test_the_report_counts_every_query(report):
    assert set(report["perturbations"]) == {*PERTURBATIONS, "all"}
    assert all(row["n"] == 8 for row in report["perturbations"].values())
    assert report["overall"]["n"] == 8 * len(PERTURBATIONS)
    for row in [*report["perturbations"].values(), report["overall"]]:
        assert 0.0 <= row["hit_at_1"] <= row["mrr"] <= 1.0
    assert report["exact"] == {"n": 8, "found_once_as_exact": 8}
    held = report["refusal"]["held_out"]
    assert held["n_absent"] == len(COLOR_HEX) * len(SHAPES) - 8 and held["n_present"] == 8 * len(PERTURBATIONS)
    assert report["scale"]["image_threshold"] == report["refusal"]["threshold"]
    assert "perturbation" in format_image_report(report)


def test_composed_accuracy_runs_from_the_picture_alone_to_the_words_alone(report, tiny_embedder, tiny_index):
    """Any model: at weight 0 the query's own image wins (never a target); at 1 the words alone rank."""
    composed = report["composed"]
    assert composed["n_cases"] == 8
    for phrasing in COMPOSED_PHRASINGS:
        clean = composed[phrasing]["clean"]
        assert set(clean["arithmetic"]) == {str(w) for w in WEIGHTS}
        assert clean["arithmetic"]["0.0"] == 0.0
        cases = composed_cases(tiny_index.products)
        words = tiny_embedder.embed_texts([phrasing.format(c=c["color"]) for c in cases]) @ tiny_index.embeddings.T
        words_alone = np.mean([int(np.argmax(row)) in c["targets"] for row, c in zip(words, cases, strict=True)])
        assert clean["arithmetic"]["1.0"] == pytest.approx(words_alone)
        # re-ranking all 8 of the picture's hits by the words is the words alone too
        assert clean["rerank"]["10"] == pytest.approx(words_alone)
    assert composed["kept"]["method"] == "arithmetic"


def test_eval_image_queries_on_the_command_line(cli_env, capsys):
    out_file = cli_env / "bench" / "image_queries.json"
    code = main(["eval", "--image-queries", "--json", "--out", str(out_file)])
    printed, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(printed) == json.loads(out_file.read_text())
    data = json.loads(printed)
    assert data["catalog"] == "default" and data["n_products"] == 8 and data["rounds"] == 3
    assert main(["eval", "--image-queries"]) == 0
    assert "each alone" in capsys.readouterr().out


def test_out_is_only_for_image_queries(cli_env, capsys):
    assert main(["eval", "--generate", "--out", "x.json"]) == 2
    assert "--out writes the report of --image-queries" in capsys.readouterr().err


def test_as_given_is_only_for_image_queries(cli_env, capsys):
    assert main(["eval", "--generate", "--as-given"]) == 2
    assert "--as-given changes how --image-queries embeds pictures" in capsys.readouterr().err


def test_the_report_measures_the_views_a_search_uses(report, tiny_embedder, catalog_dir):
    """With views=False every picture is embedded as given; the two runs differ, and say which they are."""
    products = default_catalog()
    paths = [catalog_dir / f"{p.slug}.png" for p in products]
    as_given = evaluate_image_queries(products, paths, tiny_embedder, rounds=1, views=False)
    assert report["views"] is True and as_given["views"] is False
    assert as_given["exact"] == {"n": 8, "found_once_as_exact": 8}
    assert as_given["scale"]["image_to_image_best"] != report["scale"]["image_to_image_best"]
