"""Matplotlib figures for the course: catalog grids, result rows, heatmaps, bar charts, projections.

Every function returns the :class:`~matplotlib.figure.Figure` and never calls ``plt.show()``:
Jupyter shows a returned figure by itself, and tests can count its axes and bars.
Introduced in 01_synthetic_catalog (grids) and 02_clip_embeddings (similarities).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from .catalog import Product
from .images import ImageLike, open_image

__all__ = [
    "CONDITION_COLORS",
    "IMAGE_MARKER",
    "QUERY_COLOR",
    "STRONG_COLOR",
    "TEXT_MARKER",
    "WEAK_COLOR",
    "ablation_bars",
    "contrastive_diagram",
    "metrics_by_type",
    "pca_2d",
    "projection_2d",
    "score_distributions",
    "show_catalog_grid",
    "show_results",
    "similarity_bars",
    "similarity_heatmap",
    "similarity_scales",
]

WEAK_COLOR = "#C0392B"  # the "weak hit" mark, also used by the widgets
STRONG_COLOR = "#27AE60"
QUERY_COLOR = "#2E86C1"  # the frame of a query picture
TEXT_MARKER = "^"
IMAGE_MARKER = "o"


def _figure(width: float, height: float):
    # pyplot (not Figure()) so Jupyter's inline backend displays a returned figure
    import matplotlib.pyplot as plt

    return plt.figure(figsize=(width, height))


def _show_image(ax, image: ImageLike) -> None:
    ax.imshow(open_image(image))
    ax.set_xticks([])
    ax.set_yticks([])


def show_catalog_grid(products: Sequence[Product], paths: Sequence[ImageLike], ncols: int = 4):
    """The catalog as a grid of images, one axis per product, titled with its attributes.

    Introduced in 01_synthetic_catalog.
    """
    products, paths = list(products), list(paths)
    if len(products) != len(paths):
        raise ValueError(f"got {len(products)} products but {len(paths)} images")
    ncols = max(1, min(ncols, len(products) or 1))
    nrows = max(1, math.ceil(len(products) / ncols))
    fig = _figure(3.0 * ncols, 3.9 * nrows)
    for i, (product, path) in enumerate(zip(products, paths, strict=True)):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        _show_image(ax, path)
        ax.set_title(
            f"{product.name}\n{product.color_name} {product.shape}, {product.pattern}\n"
            f"${product.price:.2f} · {product.category}",
            fontsize=9,
        )
    fig.tight_layout()
    return fig


def show_results(hits: Iterable, query: str | None = None, query_image: ImageLike | None = None):
    """Retrieved images in a row: rank, name and similarity under each; weak hits marked in red.

    ``hits`` is a :class:`~course_utils.retrieval.Retrieval` (whose ``match=False`` is noted in the
    title) or any list of ``Hit``. ``query_image``, a picture that was the query, is drawn first.
    Introduced in 03_image_retrieval.
    """
    match = getattr(hits, "match", True)  # a Retrieval knows whether anything stood out
    hits = list(hits)
    panels = max(1, len(hits) + (query_image is not None))
    fig = _figure(max(3.0, 2.8 * panels), 3.6)
    if not hits:
        ax = fig.add_subplot(1, panels, panels)
        ax.axis("off")
        ax.text(0.5, 0.5, "no results", ha="center", va="center")
    if query_image is not None:
        ax = fig.add_subplot(1, panels, 1)
        _show_image(ax, query_image)
        ax.set_xlabel("the query picture", fontsize=10, color=QUERY_COLOR)
        for spine in ax.spines.values():
            spine.set_edgecolor(QUERY_COLOR)
            spine.set_linewidth(3)
    for i, hit in enumerate(hits, start=panels - len(hits) + 1):
        ax = fig.add_subplot(1, panels, i)
        _show_image(ax, hit.path)
        label = f"#{hit.rank} {hit.product.name}\nsimilarity {hit.similarity:.3f}"
        if getattr(hit, "exact", False):
            label += "  (exact)"
        if hit.weak:
            label += "  (weak)"
            for spine in ax.spines.values():
                spine.set_edgecolor(WEAK_COLOR)
                spine.set_linewidth(3)
        ax.set_xlabel(label, fontsize=10, color=WEAK_COLOR if hit.weak else "black")
    title = f"Query: {query!r}" if query is not None else ""
    if not match:
        title += "\nno hit stands out: the catalog may not have this"
    if title:
        fig.suptitle(title.strip(), fontsize=12, color="black" if match else WEAK_COLOR)
    fig.tight_layout()
    return fig


def contrastive_diagram(image_labels: Sequence[str], captions: Sequence[str]):
    """How CLIP is trained, in one picture: a batch's image × caption similarity matrix.

    The matching pairs (the diagonal) are pulled together, every other pair pushed apart.
    Introduced in 02_clip_embeddings.
    """
    if len(image_labels) != len(captions):
        raise ValueError("a training batch has one caption per image")
    n = len(captions)
    fig = _figure(1.3 * n + 2.5, 1.0 * n + 1.8)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(np.eye(n), cmap="RdYlGn", vmin=-0.6, vmax=1.2)
    for r in range(n):
        for c in range(n):
            ax.text(c, r, "pull\ntogether" if r == c else "push\napart", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(n), list(captions), rotation=30, ha="right")
    ax.set_yticks(range(n), list(image_labels))
    ax.set_xlabel("caption (text encoder)")
    ax.set_ylabel("image (image encoder)")
    ax.set_title("One training batch: raise the diagonal, lower the rest")
    fig.tight_layout()
    return fig


def similarity_heatmap(texts: Sequence[str], products: Sequence[Product], text_emb: np.ndarray, image_emb: np.ndarray):
    """Cosine similarity of every text (rows) to every product image (columns), annotated.

    The embeddings must be L2-normalised, so the matrix is one product ``text_emb @ image_emb.T``.
    Introduced in 02_clip_embeddings.
    """
    text_emb, image_emb = np.asarray(text_emb, dtype=np.float32), np.asarray(image_emb, dtype=np.float32)
    if text_emb.shape[0] != len(texts) or image_emb.shape[0] != len(products):
        raise ValueError("one embedding row per text and per product is needed")
    sims = text_emb @ image_emb.T
    fig = _figure(1.1 * len(products) + 3.0, 0.55 * len(texts) + 2.0)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(sims, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(products)), [p.name for p in products], rotation=45, ha="right")
    ax.set_yticks(range(len(texts)), list(texts))
    # the best image for each text gets a bold label: that is what retrieval would return first
    best = sims.argmax(axis=1)
    middle = (sims.max() + sims.min()) / 2
    for r in range(sims.shape[0]):
        for c in range(sims.shape[1]):
            ax.text(
                c,
                r,
                f"{sims[r, c]:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                fontweight="bold" if c == best[r] else "normal",
                color="black" if sims[r, c] > middle else "white",
            )
    fig.colorbar(image, ax=ax, label="cosine similarity")
    ax.set_title("Text × image similarity (bold: best image for each text)")
    fig.tight_layout()
    return fig


def similarity_bars(query: str, products: Sequence[Product], scores: np.ndarray):
    """One text's similarity to every image as a sorted horizontal bar chart, best on top."""
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    if scores.shape[0] != len(products):
        raise ValueError(f"got {scores.shape[0]} scores for {len(products)} products")
    order = np.argsort(-scores, kind="stable")
    fig = _figure(7.0, 0.45 * len(products) + 1.5)
    ax = fig.add_subplot(1, 1, 1)
    names = [products[i].name for i in order]
    colors = [products[i].color for i in order]
    bars = ax.barh(range(len(order)), scores[order], color=colors, edgecolor="black")
    ax.set_yticks(range(len(order)), names)
    ax.invert_yaxis()  # best on top
    for bar, value in zip(bars, scores[order], strict=True):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {value:.3f}", va="center", fontsize=9)
    ax.axvline(float(scores.mean()), color="gray", linestyle="--", linewidth=1, label="catalog mean")
    ax.set_xlabel("cosine similarity")
    ax.set_title(f"Similarity of {query!r} to every catalog image")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """Project rows onto their first two principal components (centre, then SVD).

    Introduced in 02_clip_embeddings.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    centred = vectors - vectors.mean(axis=0, keepdims=True)
    # the right singular vectors are the principal directions, largest variance first
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    coords = centred @ vt[:2].T
    if coords.shape[1] < 2:  # fewer than two rows or dimensions: pad so a 2-D plot still works
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    return coords


def projection_2d(
    text_emb: np.ndarray,
    image_emb: np.ndarray,
    text_labels: Sequence[str],
    image_labels: Sequence[str],
):
    """Texts and images projected together to 2-D by PCA: one space, two kinds of points.

    The projection is fitted on the joint set, so texts and images share the same axes.
    Introduced in 02_clip_embeddings.
    """
    text_emb, image_emb = np.asarray(text_emb), np.asarray(image_emb)
    if text_emb.shape[0] != len(text_labels) or image_emb.shape[0] != len(image_labels):
        raise ValueError("one label per embedding row is needed")
    coords = pca_2d(np.vstack([text_emb, image_emb]))
    text_xy, image_xy = coords[: len(text_labels)], coords[len(text_labels) :]
    fig = _figure(7.5, 6.0)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(image_xy[:, 0], image_xy[:, 1], marker=IMAGE_MARKER, s=90, color="#2980B9", label="images")
    ax.scatter(text_xy[:, 0], text_xy[:, 1], marker=TEXT_MARKER, s=90, color="#E67E22", label="texts")
    for (x, y), label in zip(image_xy, image_labels, strict=True):
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, -10), fontsize=8, color="#2980B9")
    for (x, y), label in zip(text_xy, text_labels, strict=True):
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8, color="#D35400")
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.set_title("Texts and images in one embedding space (PCA to 2-D)")
    ax.legend()
    fig.tight_layout()
    return fig


def metrics_by_type(report: dict, metric: str = "r_precision"):
    """A bar per query type (colour, shape, ...) of one metric from an evaluation report.

    Shows *where* retrieval fails. Introduced in 08_evaluating_image_rag.
    """
    types = list(report["by_type"])
    values = [report["by_type"][t][metric] for t in types]
    fig = _figure(6, 3)
    ax = fig.add_subplot()
    bars = ax.bar(types, values, color=[STRONG_COLOR if v >= 0.9 else WEAK_COLOR for v in values])
    ax.bar_label(bars, fmt="%.2f")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"{metric.replace('_', ' ')} by query type ({report['model']})")
    return fig


def score_distributions(present: Sequence[float], absent: Sequence[float], threshold: float | None = None):
    """Histograms of the best-hit similarity for queries the catalog has and for ones it lacks.

    The gap between them is what lets a system say "we don't have that". Introduced in
    08_evaluating_image_rag.
    """
    fig = _figure(7, 3)
    ax = fig.add_subplot()
    bins = np.linspace(min(min(present), min(absent)), max(max(present), max(absent)), 30)
    ax.hist(present, bins=bins, alpha=0.7, color=STRONG_COLOR, label=f"in the catalog ({len(present)})")
    ax.hist(absent, bins=bins, alpha=0.7, color=WEAK_COLOR, label=f"not in the catalog ({len(absent)})")
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set_xlabel("similarity of the best hit")
    ax.set_ylabel("queries")
    ax.legend()
    return fig


#: One colour per evidence condition, the same in every chart: greys for the controls.
CONDITION_COLORS = {
    "none": "#BDC3C7",
    "metadata": "#E67E22",
    "images": "#3498DB",
    "both": "#27AE60",
    "all-images": "#8E44AD",
    "random": "#7F8C8D",
}


def ablation_bars(report: dict, metric: str = "accuracy"):
    """Grouped bars of an ablation report: one group per question type, one bar per condition.

    ``report`` is what :func:`course_utils.ablation.run_ablation` returns. Introduced in
    10_what_the_pictures_add.
    """
    conditions = [entry["condition"] for entry in report["conditions"]]
    types = list(report["conditions"][0]["by_type"]) if conditions else []
    width = 0.8 / max(1, len(conditions))
    fig = _figure(max(7.0, 1.4 * len(types) + 2), 3.6)
    ax = fig.add_subplot()
    for i, entry in enumerate(report["conditions"]):
        values = [entry["by_type"][t][metric] or 0.0 for t in types]
        positions = [x + (i - (len(conditions) - 1) / 2) * width for x in range(len(types))]
        ax.bar(positions, values, width, label=entry["condition"], color=CONDITION_COLORS.get(entry["condition"]))
    ax.set_xticks(range(len(types)))
    ax.set_xticklabels([f"{t}\n(n={report['conditions'][0]['by_type'][t]['n']})" for t in types])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(
        f"{metric.replace('_', ' ')} by condition: {report['catalog_products']} products, '{report['metadata']}' rows"
    )
    ax.legend(ncol=len(conditions), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
    fig.tight_layout()
    return fig


def similarity_scales(
    text_to_image: Sequence[float],
    image_to_image: Sequence[float],
    text_threshold: float | None = None,
    image_threshold: float | None = None,
):
    """Best-hit similarities of sentences and of pictures as queries, on one axis, with their thresholds.

    A picture is far more similar to pictures than any sentence is, so one threshold cannot
    serve both. Introduced in 03_image_retrieval.
    """
    fig = _figure(7, 3)
    ax = fig.add_subplot()
    values = [*text_to_image, *image_to_image]
    bins = np.linspace(min(values), max(values), 30)
    ax.hist(text_to_image, bins=bins, alpha=0.7, color=STRONG_COLOR, label=f"a sentence ({len(text_to_image)})")
    ax.hist(image_to_image, bins=bins, alpha=0.7, color=QUERY_COLOR, label=f"a picture ({len(image_to_image)})")
    for threshold, color, who in (
        (text_threshold, STRONG_COLOR, "sentence"),
        (image_threshold, QUERY_COLOR, "picture"),
    ):
        if threshold is not None:
            ax.axvline(threshold, color=color, linestyle="--", label=f"{who} threshold {threshold:.3f}")
    ax.set_xlabel("similarity of the best hit")
    ax.set_ylabel("queries")
    ax.legend(fontsize=8)
    return fig
