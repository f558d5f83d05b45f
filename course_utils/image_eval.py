"""Measuring search by picture: photo-like copies of catalog images, pictures plus words, refusal.

Every query is made from the catalog itself, so the right answer is known: a copy of product P's
image, cropped, turned, shrunk, re-lit, JPEG-compressed or put in front of a room, should find P;
P's image plus the word of another colour should find the product with that colour and P's shape,
where the catalog has one; and pictures of looks the catalog lacks should be refused. Backs
``python -m course_utils eval --image-queries``.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .calibration import absent_pictures, catalog_picture, image_refusal_calibration, refusal_calibration
from .catalog import COLOR_HEX, Product, default_catalog, load_catalog, render_catalog
from .embeddings import load_clip
from .evaluation import hit_at_k, rank_products, reciprocal_rank
from .index import ImageIndex
from .perturbations import PERTURBATIONS, perturb
from .query import generate_queries
from .query_views import embed_picture_views, view_similarities
from .retrieval import TEXT_WEIGHT, compose_query, retrieve_by_image

__all__ = [
    "COMPOSED_PHRASINGS",
    "RERANK_DEPTHS",
    "WEIGHTS",
    "composed_cases",
    "evaluate_image_queries",
    "format_image_report",
    "run_image_eval",
]

#: The words weights the picture + words query is measured at (0: the picture alone, 1: the words alone).
WEIGHTS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
#: How many of the picture's best hits a re-rank by the words reorders.
RERANK_DEPTHS = (3, 5, 10)
#: How the words of a picture + words query are written.
COMPOSED_PHRASINGS = ("{c}", "like this, but {c}")
#: Perturbation rows of the report: each one alone, then all of them at once (a hard case).
ROWS = (*PERTURBATIONS, "all")


def composed_cases(products: Sequence[Product]) -> list[dict[str, Any]]:
    """Every (product, other colour) pair whose answer exists: the products with that colour and its shape."""
    cases = []
    for i, product in enumerate(products):
        for color in COLOR_HEX:
            if color == product.color_name:
                continue
            targets = [j for j, o in enumerate(products) if o.color_name == color and o.shape == product.shape]
            if targets:
                cases.append({"product": i, "color": color, "targets": targets})
    return cases


def _rank_of(scores: np.ndarray, relevant: Sequence[int]) -> int:
    """1-based rank of the best-ranked relevant row (ties broken against it, as in evaluation)."""
    mask = np.zeros(len(scores), dtype=bool)
    mask[list(relevant)] = True
    order = rank_products(scores, mask)
    return int(np.flatnonzero(mask[order])[0]) + 1


def _summary(ranks: Sequence[int]) -> dict[str, float]:
    return {
        "n": len(ranks),
        "hit_at_1": float(np.mean([hit_at_k([r], 1) for r in ranks])),
        "mrr": float(np.mean([reciprocal_rank([r]) for r in ranks])),
    }


def _spread(values: Sequence[float]) -> dict[str, float]:
    values = np.asarray(values, dtype=float)
    return {
        "median": round(float(np.median(values)), 4),
        "p10": round(float(np.percentile(values, 10)), 4),
        "p90": round(float(np.percentile(values, 90)), 4),
    }


def _picture_scores(view_vectors: np.ndarray, index: ImageIndex) -> np.ndarray:
    """Every picture's similarity to every catalog image, as :func:`retrieve_by_image` scores it."""
    return np.stack([view_similarities(v, index) for v in view_vectors]) if len(view_vectors) else np.zeros((0, 0))


def evaluate_image_queries(
    products: Sequence[Product],
    paths: Sequence[str | os.PathLike],
    embedder: Any,
    seed: int = 1,
    rounds: int = 3,
    views: bool = True,
) -> dict[str, Any]:
    """Search by picture on a rendered catalog: per-perturbation hit@1 and MRR, pictures + words, refusal.

    ``rounds`` random draws of every perturbation are made of every product's image, with
    ``seed`` (the refusal threshold is calibrated on other draws, seed 0, so refusal is judged on
    pictures it was not fitted to). Pictures are embedded as :func:`retrieve_by_image` embeds a
    query, with or without its ``views``.
    """
    started = time.perf_counter()
    products = list(products)
    paths = [str(p) for p in paths]
    index = ImageIndex(embedder.embed_images(paths, progress=False), products, paths, embedder.model_id)
    rng = np.random.default_rng([seed, 17])
    pictures = [catalog_picture(p, path) for p, path in zip(products, paths, strict=True)]

    # 1. perturbed copies of each product's image should find that product
    queries = [
        (i, name, perturb(pictures[i], name, rng)) for _ in range(rounds) for name in ROWS for i in range(len(products))
    ]
    view_vectors = embed_picture_views([q[2] for q in queries], embedder, views)
    scores = _picture_scores(view_vectors, index)
    ranks = {name: [] for name in ROWS}
    for (i, name, _), row in zip(queries, scores, strict=True):
        ranks[name].append(_rank_of(row, [i]))
    per_perturbation = {name: _summary(r) for name, r in ranks.items()}
    single = [r for name in PERTURBATIONS for r in ranks[name]]

    # 2. the catalog's own images, through retrieve_by_image: each must come back once, as the exact hit
    exact_ok = 0
    for path in paths:
        found = retrieve_by_image(path, index, embedder, k=min(3, len(products)), views=views)
        exact_ok += found[0].exact and found[0].path == path and sum(h.exact for h in found) == 1
    # 3. the two scales: a picture against pictures, a sentence against pictures
    best_image = scores[[k for k, q in enumerate(queries) if q[1] != "all"]].max(axis=1)
    texts = [q["query"] for q in generate_queries(products) if q["relevant"] and q["type"] != "category"]
    best_text = (embedder.embed_texts(texts) @ index.embeddings.T).max(axis=1)
    image_cal, text_cal = image_refusal_calibration(index, embedder, views), refusal_calibration(index, embedder)

    report: dict[str, Any] = {
        "model": embedder.model_id,
        "n_products": len(products),
        "seed": seed,
        "rounds": rounds,
        "views": views,
        "perturbations": per_perturbation,
        "overall": _summary(single),
        "exact": {"n": len(paths), "found_once_as_exact": exact_ok},
        "scale": {
            "image_to_image_best": _spread(best_image),
            "text_to_image_best": _spread(best_text),
            "image_threshold": image_cal["threshold"] if image_cal else None,
            "text_threshold": text_cal["threshold"] if text_cal else None,
        },
        "composed": _composed(products, index, embedder, queries, view_vectors, pictures, views),
        "refusal": _refusal(products, index, embedder, best_image, image_cal, seed, views),
    }
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def _composed(products, index, embedder, queries, view_vectors, pictures, views) -> dict[str, Any]:
    """Picture + the word of another colour: the arithmetic mix at each weight against a re-rank by the words.

    The picture's vector is its main view, the one :func:`retrieve_by_image` mixes with words.
    """
    cases = composed_cases(products)
    if not cases:
        return {"n_cases": 0}
    # the query pictures: each product's clean image, and its first copy under each perturbation
    by_product = {"clean": embed_picture_views(pictures, embedder, views)[:, 0]}
    for (i, name, _), vector in zip(queries, view_vectors[:, 0], strict=True):
        by_product.setdefault(name, {}).setdefault(i, vector)
    out: dict[str, Any] = {"n_cases": len(cases)}
    for phrasing in COMPOSED_PHRASINGS:
        words = embedder.embed_texts([phrasing.format(c=case["color"]) for case in cases])
        text_scores = words @ index.embeddings.T
        out[phrasing] = {}
        for source, picture_of in by_product.items():
            images = np.stack([picture_of[case["product"]] for case in cases])
            image_scores = images @ index.embeddings.T
            arithmetic = {}
            for weight in WEIGHTS:
                mixed = compose_query(images, words, weight) @ index.embeddings.T
                hits = [_rank_of(row, case["targets"]) == 1 for row, case in zip(mixed, cases, strict=True)]
                arithmetic[str(weight)] = round(float(np.mean(hits)), 4)
            rerank = {}
            for depth in RERANK_DEPTHS:
                hits = []
                for case, image_row, text_row in zip(cases, image_scores, text_scores, strict=True):
                    shortlist = np.argsort(-image_row, kind="stable")[:depth]
                    hits.append(int(shortlist[np.argmax(text_row[shortlist])]) in case["targets"])
                rerank[str(depth)] = round(float(np.mean(hits)), 4)
            out[phrasing][source] = {"arithmetic": arithmetic, "rerank": rerank}
    clean = out[COMPOSED_PHRASINGS[0]]["clean"]
    out["kept"] = {
        "method": "arithmetic",
        "weight": TEXT_WEIGHT,
        "accuracy_clean": clean["arithmetic"][str(TEXT_WEIGHT)],
    }
    return out


def _refusal(products, index, embedder, best_present, calibration, seed, views) -> dict[str, Any] | None:
    """Judge the calibrated picture threshold on pictures it was not fitted to (another seed)."""
    if not calibration:
        return None
    threshold = calibration["threshold"]
    absent = absent_pictures(products, seed)
    best_absent = _picture_scores(embed_picture_views(absent, embedder, views), index).max(axis=1) if absent else []
    return {
        "threshold": threshold,
        "calibration": calibration,
        "held_out": {
            "false_accept": float(np.mean(np.asarray(best_absent) >= threshold)) if len(best_absent) else None,
            "n_absent": len(best_absent),
            "false_reject": float(np.mean(best_present < threshold)),
            "n_present": int(len(best_present)),
        },
    }


def _fmt(value: float | None) -> str:
    return "  -  " if value is None else f"{value:.3f}"


def format_image_report(report: dict[str, Any]) -> str:
    """A plain-text table of an :func:`evaluate_image_queries` result."""
    lines = [
        f"Model {report['model']}: {report['n_products']} products, {report['rounds']} draws of each perturbation",
        f"  {'perturbation':<17} {'n':>4}  {'hit@1':>6}  {'MRR':>6}",
    ]
    for name, row in report["perturbations"].items():
        lines.append(f"  {name:<17} {row['n']:>4}  {_fmt(row['hit_at_1']):>6}  {_fmt(row['mrr']):>6}")
    overall = report["overall"]
    lines.append(f"  {'each alone':<17} {overall['n']:>4}  {_fmt(overall['hit_at_1']):>6}  {_fmt(overall['mrr']):>6}")
    exact = report["exact"]
    lines.append(f"  catalog image as query: {exact['found_once_as_exact']} of {exact['n']} come back once, as exact")
    scale = report["scale"]
    lines.append(
        f"  best similarity, picture to pictures: median {scale['image_to_image_best']['median']:.3f}; "
        f"sentence to pictures: median {scale['text_to_image_best']['median']:.3f}"
    )
    lines.append(f"  thresholds: picture {_fmt(scale['image_threshold'])}, sentence {_fmt(scale['text_threshold'])}")
    composed = report["composed"]
    if composed.get("n_cases"):
        kept = composed["kept"]
        lines.append(f"  picture + another colour's word ({composed['n_cases']} cases with an answer):")
        for phrasing in COMPOSED_PHRASINGS:
            row = composed[phrasing]["clean"]
            mix = " ".join(f"{w}:{v:.2f}" for w, v in row["arithmetic"].items())
            rerank = " ".join(f"{d}:{v:.2f}" for d, v in row["rerank"].items())
            lines.append(f"    '{phrasing}': mix by words weight {mix} | re-rank top-N {rerank}")
        lines.append(f"    kept: {kept['method']} at weight {kept['weight']}: {kept['accuracy_clean']:.3f}")
    refusal = report.get("refusal")
    if refusal:
        held = refusal["held_out"]
        lines.append(
            f"  refusal at {refusal['threshold']:.3f} (held out): false accepts {_fmt(held['false_accept'])} "
            f"of {held['n_absent']} absent pictures, false rejects {_fmt(held['false_reject'])} of {held['n_present']}"
        )
    lines.append(f"  ({report['seconds']:.0f} s)")
    return "\n".join(lines)


def run_image_eval(
    catalog_path: str | os.PathLike | None = None,
    model: str | os.PathLike | None = None,
    device: str | None = None,
    seed: int = 1,
    rounds: int = 3,
    views: bool = True,
) -> dict[str, Any]:
    """Render a catalog (the default eight products if None), embed it and run :func:`evaluate_image_queries`.

    Backs ``python -m course_utils eval --image-queries``.
    """
    products = load_catalog(catalog_path) if catalog_path is not None else default_catalog()
    embedder = load_clip(model, device)
    with tempfile.TemporaryDirectory(prefix="course-image-eval-") as tmp:
        paths = render_catalog(products, tmp)
        report = evaluate_image_queries(products, paths, embedder, seed=seed, rounds=rounds, views=views)
    report["catalog"] = str(catalog_path) if catalog_path is not None else "default"
    return report
