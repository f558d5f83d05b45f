"""The course's figures: right number of axes, bars, labels and annotations."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from course_utils.catalog import default_catalog
from course_utils.embeddings import l2_normalize
from course_utils.retrieval import Hit
from course_utils.viz import (
    contrastive_diagram,
    pca_2d,
    projection_2d,
    show_catalog_grid,
    show_results,
    similarity_bars,
    similarity_heatmap,
    similarity_scales,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def products():
    return default_catalog()


@pytest.fixture
def paths(products, catalog_dir):
    return [catalog_dir / f"{p.slug}.png" for p in products]


def test_catalog_grid_has_one_titled_axis_per_product(products, paths):
    fig = show_catalog_grid(products, paths, ncols=3)
    assert len(fig.axes) == len(products)
    titles = [ax.get_title() for ax in fig.axes]
    assert all(p.name in t and f"${p.price:.2f}" in t for p, t in zip(products, titles, strict=True))
    # 8 products in 3 columns need 3 rows
    assert fig.axes[-1].get_subplotspec().get_geometry()[:2] == (3, 3)


def test_catalog_grid_rejects_mismatched_lengths(products, paths):
    with pytest.raises(ValueError):
        show_catalog_grid(products, paths[:-1])


def test_show_results_labels_rank_name_similarity_and_weak(products, paths):
    hits = [
        Hit(1, products[0], str(paths[0]), 0.3123, weak=False),
        Hit(2, products[2], str(paths[2]), 0.2011, weak=True),
    ]
    fig = show_results(hits, query="red circle")
    assert len(fig.axes) == 2
    labels = [ax.get_xlabel() for ax in fig.axes]
    assert labels[0].startswith("#1 Widget A") and "0.312" in labels[0] and "weak" not in labels[0]
    assert labels[1].startswith("#2 Gadget X") and "0.201" in labels[1] and "(weak)" in labels[1]
    assert "red circle" in fig._suptitle.get_text()


def test_show_results_draws_the_query_picture_first_and_marks_the_exact_hit(products, paths):
    hits = [Hit(1, products[3], str(paths[3]), 1.0, exact=True), Hit(2, products[0], str(paths[0]), 0.5, weak=True)]
    fig = show_results(hits, query_image=paths[3])
    labels = [ax.get_xlabel() for ax in fig.axes]
    assert len(fig.axes) == 3 and labels[0] == "the query picture"
    assert labels[1].startswith("#1 Gadget Y") and "(exact)" in labels[1] and "(exact)" not in labels[2]


def test_similarity_scales_draws_both_histograms_and_thresholds():
    fig = similarity_scales([0.3, 0.35, 0.4], [0.7, 0.8, 0.95, 0.99], 0.33, 0.75)
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(legend) == ["a picture (4)", "a sentence (3)", "picture threshold 0.750", "sentence threshold 0.330"]
    assert sorted(line.get_xdata()[0] for line in ax.get_lines()) == [0.33, 0.75]


def test_show_results_without_hits_says_so():
    fig = show_results([])
    assert [t.get_text() for t in fig.axes[0].texts] == ["no results"]


def test_similarity_heatmap_annotates_every_cell_and_bolds_the_best(products):
    rng = np.random.default_rng(0)
    texts = ["a red circle", "a blue square", "a green triangle"]
    text_emb = l2_normalize(rng.normal(size=(3, 8)))
    image_emb = l2_normalize(rng.normal(size=(len(products), 8)))
    fig = similarity_heatmap(texts, products, text_emb, image_emb)
    ax = fig.axes[0]
    annotations = ax.texts
    assert len(annotations) == len(texts) * len(products)
    sims = text_emb @ image_emb.T
    assert annotations[1].get_text() == f"{sims[0, 1]:.2f}"
    bold = [t for t in annotations if t.get_fontweight() == "bold"]
    assert len(bold) == len(texts)
    assert [t.get_text() for t in ax.get_yticklabels()] == texts
    assert [t.get_text() for t in ax.get_xticklabels()] == [p.name for p in products]


def test_similarity_bars_are_sorted_best_first(products):
    scores = np.linspace(0.1, 0.3, len(products), dtype=np.float32)  # last product scores highest
    fig = similarity_bars("a pink square", products, scores)
    ax = fig.axes[0]
    assert len(ax.patches) == len(products)
    widths = [bar.get_width() for bar in ax.patches]
    assert widths == sorted(widths, reverse=True)
    assert ax.get_yticklabels()[0].get_text() == products[-1].name


def test_similarity_bars_rejects_wrong_length(products):
    with pytest.raises(ValueError):
        similarity_bars("x", products, np.zeros(3))


def test_pca_2d_keeps_the_largest_variance_direction():
    rng = np.random.default_rng(1)
    points = np.zeros((50, 5))
    points[:, 3] = rng.normal(scale=10.0, size=50)  # the dominant direction
    points[:, 1] = rng.normal(scale=0.1, size=50)
    coords = pca_2d(points)
    assert coords.shape == (50, 2)
    assert abs(np.corrcoef(coords[:, 0], points[:, 3])[0, 1]) > 0.99


def test_projection_2d_plots_texts_and_images_with_different_markers(products):
    rng = np.random.default_rng(2)
    text_emb = l2_normalize(rng.normal(size=(3, 8)))
    image_emb = l2_normalize(rng.normal(size=(len(products), 8)))
    fig = projection_2d(text_emb, image_emb, ["a", "b", "c"], [p.name for p in products])
    ax = fig.axes[0]
    sizes = sorted(len(c.get_offsets()) for c in ax.collections)
    assert sizes == [3, len(products)]
    assert len(ax.texts) == 3 + len(products)
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"texts", "images"}
    markers = {c.get_paths()[0].vertices.shape for c in ax.collections}
    assert len(markers) == 2  # a triangle and a circle are different paths


def test_contrastive_diagram_pulls_the_diagonal_and_pushes_the_rest():
    fig = contrastive_diagram(["img 1", "img 2", "img 3"], ["cap 1", "cap 2", "cap 3"])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 9
    assert texts.count("pull\ntogether") == 3 and texts[0] == texts[4] == texts[8] == "pull\ntogether"
    with pytest.raises(ValueError):
        contrastive_diagram(["a"], ["b", "c"])


def test_show_results_notes_a_retrieval_without_a_match(products, paths):
    from course_utils.retrieval import Retrieval

    hits = (Hit(1, products[7], str(paths[7]), 0.05, weak=False),)
    fig = show_results(Retrieval("black hexagon", hits, plan="none", match=False), query="black hexagon")
    assert "may not have this" in fig._suptitle.get_text()
    fig = show_results(Retrieval("pink square", hits, plan="none", match=True), query="pink square")
    assert "may not have" not in fig._suptitle.get_text()


def test_metrics_by_type_has_a_bar_per_type():
    from course_utils.viz import metrics_by_type

    report = {"model": "m", "by_type": {"color": {"r_precision": 1.0}, "shape": {"r_precision": 0.5}}}
    fig = metrics_by_type(report)
    assert len(fig.axes[0].patches) == 2


def test_score_distributions_marks_the_threshold():
    from course_utils.viz import score_distributions

    fig = score_distributions([0.5, 0.6], [0.1, 0.2], threshold=0.35)
    ax = fig.axes[0]
    assert any(abs(line.get_xdata()[0] - 0.35) < 1e-9 for line in ax.get_lines())
    assert len(ax.get_legend().get_texts()) == 3


def test_ablation_bars_have_one_bar_per_condition_and_type():
    import json
    from pathlib import Path

    from course_utils.viz import CONDITION_COLORS, ablation_bars

    kept = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "ablation_default.json"
    report = json.loads(kept.read_text(encoding="utf-8"))
    fig = ablation_bars(report)
    ax = fig.axes[0]
    types = list(report["conditions"][0]["by_type"])
    assert len(ax.patches) == len(report["conditions"]) * len(types)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [c["condition"] for c in report["conditions"]]
    images = next(c for c in report["conditions"] if c["condition"] == "images")
    heights = [p.get_height() for p in ax.containers[2]]
    assert heights == [images["by_type"][t]["accuracy"] for t in types]
    assert ax.containers[2].patches[0].get_facecolor()[:3] == matplotlib.colors.to_rgb(CONDITION_COLORS["images"])
