"""Measuring retrieval: labelled queries, ranking metrics and a whole-catalog evaluation.

A labelled query names every catalog product that answers it; the metrics compare that set with
the ranking CLIP produces. Introduced in 06_exercises (exercise (b)); used again in
07_train_your_own_clip and 08_evaluating_image_rag.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .calibration import choose_threshold
from .catalog import Product, default_catalog, load_catalog, render_catalog
from .embeddings import load_clip
from .errors import CourseError
from .query import generate_queries

__all__ = [
    "DEFAULT_LABELLED_QUERIES",
    "TOP_SHOWN",
    "evaluate_retrieval",
    "format_report",
    "hit_at_k",
    "load_queries",
    "ndcg_at_k",
    "r_precision",
    "rank_products",
    "recall_at_k",
    "reciprocal_rank",
    "run_eval",
]

#: How many of the best-ranked product names each per-query record lists (at least |relevant|).
TOP_SHOWN = 5


#: Sixteen hand-labelled queries on the default catalog, used by notebooks 06 and 07 to compare
#: CLIP models: single products, colours, patterns and shapes with one to four right answers.
DEFAULT_LABELLED_QUERIES: tuple[dict[str, Any], ...] = tuple(
    {"query": query, "relevant": relevant}
    for query, relevant in [
        ("a red circle", ["Widget A"]),
        ("a blue striped square", ["Widget B"]),
        ("a green triangle", ["Gadget X"]),
        ("a yellow circle with dots", ["Gadget Y"]),
        ("a purple rectangle", ["Tool M"]),
        ("an orange diamond", ["Tool N"]),
        ("a teal circle", ["Widget C"]),
        ("a pink dotted square", ["Gadget Z"]),
        ("something red", ["Widget A"]),
        ("Which products are green?", ["Gadget X"]),
        ("Show me pink items", ["Gadget Z"]),
        ("striped products", ["Widget B", "Tool N"]),
        ("polka-dot items", ["Gadget Y", "Gadget Z"]),
        ("What round things do you have?", ["Widget A", "Gadget Y", "Widget C"]),
        ("square products", ["Widget B", "Gadget Z"]),
        ("plain items with no pattern", ["Widget A", "Gadget X", "Tool M", "Widget C"]),
    ]
)


# --------------------------------------------------------------------------- metrics on ranks


def hit_at_k(ranks: Sequence[int], k: int) -> float:
    """1.0 when any relevant product is ranked within the first ``k``, else 0.0.

    ``ranks`` are the 1-based ranks of the relevant products.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return 1.0 if ranks and min(ranks) <= k else 0.0


def reciprocal_rank(ranks: Sequence[int]) -> float:
    """1 / (rank of the best-ranked relevant product); 0.0 when there is none.

    Averaged over queries this is the mean reciprocal rank (MRR).
    """
    return 1.0 / min(ranks) if ranks else 0.0


def r_precision(ranks: Sequence[int]) -> float:
    """The fraction of the R relevant products found in the top R (R = ``len(ranks)``).

    1.0 means the relevant products fill the first places. Introduced in 08_evaluating_image_rag.
    """
    if not ranks:
        return 0.0
    r = len(ranks)
    return sum(1 for rank in ranks if rank <= r) / r


def recall_at_k(ranks: Sequence[int], k: int) -> float:
    """The fraction of the relevant products ranked within the first ``k``."""
    return sum(1 for rank in ranks if rank <= k) / len(ranks) if ranks else 0.0


def ndcg_at_k(ranks: Sequence[int], k: int) -> float:
    """Normalised discounted cumulative gain: relevant products near the top count most.

    Binary relevance; 1.0 when the relevant products fill the first places.
    Introduced in 08_evaluating_image_rag.
    """
    if not ranks:
        return 0.0
    gain = sum(1.0 / np.log2(rank + 1) for rank in ranks if rank <= k)
    ideal = sum(1.0 / np.log2(i + 2) for i in range(min(len(ranks), k)))
    return gain / ideal


def rank_products(similarities: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Product indices ordered best first; on equal similarity non-relevant products come first.

    Breaking ties against the relevant products keeps a model that scores everything alike
    from looking good by luck of catalog order.
    """
    return np.lexsort((relevant.astype(np.int8), -np.asarray(similarities, dtype=np.float64)))


# --------------------------------------------------------------------------- labelled queries


def load_queries(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read labelled queries from a JSONL file: one ``{"query": ..., "relevant": [names]}`` a line.

    An empty ``relevant`` list marks a query for something the catalog does not have: it is not
    scored, but its best similarity is recorded. Extra keys (such as ``attributes``) are kept.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CourseError(f"Query file not found: {path}.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CourseError(f"Cannot read query file {path}: {exc}.") from None
    queries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CourseError(f"{where}: not valid JSON ({exc.msg}); each line must be one JSON object.") from None
        except RecursionError:
            raise CourseError(f"{where}: nested too deeply; each line must be one flat JSON object.") from None
        except ValueError as exc:  # e.g. a number of more than 4,300 digits
            raise CourseError(f"{where}: not valid JSON ({exc}).") from None
        if not isinstance(item, dict):
            raise CourseError(f'{where}: expected a JSON object like {{"query": ..., "relevant": [...]}}.')
        query = item.get("query")
        if not isinstance(query, str) or not query.strip():
            raise CourseError(f"{where}: 'query' must be a non-empty string.")
        relevant = item.get("relevant")
        if not isinstance(relevant, list) or not all(isinstance(name, str) and name.strip() for name in relevant):
            raise CourseError(f"{where}: 'relevant' must be a list of product names (may be empty).")
        if len(set(relevant)) != len(relevant):
            raise CourseError(f"{where}: 'relevant' lists a product twice.")
        queries.append({**item, "query": query.strip(), "relevant": [name.strip() for name in relevant]})
    if not queries:
        raise CourseError(f"{path} holds no queries.")
    return queries


# --------------------------------------------------------------------------- evaluation


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def evaluate_retrieval(
    queries: Sequence[Mapping[str, Any]],
    products: Sequence[Product],
    image_embeddings: np.ndarray,
    embedder: Any,
) -> dict[str, Any]:
    """Rank every product for every query and score the rankings.

    Parameters
    ----------
    queries : labelled queries as :func:`load_queries` returns them.
    products : the catalog, in the order of ``image_embeddings``' rows.
    image_embeddings : (n_products, d) L2-normalised image embeddings.
    embedder : a :class:`~course_utils.embeddings.CLIPEmbedder` (anything with ``embed_texts``).

    Returns
    -------
    dict with ``model``, ``n_queries`` (scored queries), ``n_absent``, the means ``hit_at_1``, ``mrr``
    and ``r_precision``, and ``per_query`` records (``ranks`` 1-based; ``best_similarity`` is the
    top-ranked product's similarity, scored or not, for calibrating "not in the catalog").

    Introduced in 06_exercises.
    """
    image_embeddings = np.asarray(image_embeddings, dtype=np.float32)
    if image_embeddings.ndim != 2 or len(image_embeddings) != len(products):
        raise CourseError(
            f"Got {len(products)} products but image embeddings of shape {image_embeddings.shape}; "
            "embed one image per product, in catalog order."
        )
    names = [p.name for p in products]
    position = {name: i for i, name in enumerate(names)}
    for q in queries:
        unknown = [name for name in q["relevant"] if name not in position]
        if unknown:
            raise CourseError(
                f"Query {q['query']!r} lists {', '.join(map(repr, unknown))}, not in the catalog ({', '.join(names)})."
            )
    texts = [q["query"] for q in queries]
    similarities = embedder.embed_texts(texts) @ image_embeddings.T if texts else np.zeros((0, len(names)))

    per_query = []
    for q, sims in zip(queries, similarities, strict=True):
        is_relevant = np.zeros(len(names), dtype=bool)
        is_relevant[[position[name] for name in q["relevant"]]] = True
        order = rank_products(sims, is_relevant)
        rank_of = np.empty(len(names), dtype=np.int64)
        rank_of[order] = np.arange(1, len(names) + 1)
        ranks = sorted(int(rank_of[position[name]]) for name in q["relevant"])
        scored = bool(ranks)
        per_query.append(
            {
                "query": q["query"],
                "relevant": list(q["relevant"]),
                "ranks": ranks,
                "top": [names[i] for i in order[: max(TOP_SHOWN, len(ranks))]],
                "best_similarity": float(sims[order[0]]),
                "hit_at_1": hit_at_k(ranks, 1) if scored else None,
                "reciprocal_rank": reciprocal_rank(ranks) if scored else None,
                "r_precision": r_precision(ranks) if scored else None,
                "recall_at_3": recall_at_k(ranks, 3) if scored else None,
                "ndcg_at_3": ndcg_at_k(ranks, 3) if scored else None,
                "type": q.get("type"),
            }
        )
    scored_rows = [row for row in per_query if row["ranks"]]
    return {
        "model": getattr(embedder, "model_id", type(embedder).__name__),
        "n_queries": len(scored_rows),
        "n_absent": len(per_query) - len(scored_rows),
        "hit_at_1": _mean([row["hit_at_1"] for row in scored_rows]),
        "mrr": _mean([row["reciprocal_rank"] for row in scored_rows]),
        "r_precision": _mean([row["r_precision"] for row in scored_rows]),
        "recall_at_3": _mean([row["recall_at_3"] for row in scored_rows]),
        "ndcg_at_3": _mean([row["ndcg_at_3"] for row in scored_rows]),
        "by_type": _by_type(scored_rows),
        "refusal": _refusal(per_query),
        "per_query": per_query,
    }


def _refusal(rows: Sequence[Mapping[str, Any]]) -> dict[str, float] | None:
    """Threshold and error rates for "is it in the catalog?" when absent queries are present."""
    present = [r["best_similarity"] for r in rows if r["ranks"] and r.get("type") != "category"]
    absent = [r["best_similarity"] for r in rows if not r["ranks"]]
    return choose_threshold(present, absent) if present and absent else None


def _by_type(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """The metrics per query type (colour, shape, ...), so you see where the model fails."""
    types = sorted({row["type"] for row in rows if row.get("type")})
    metrics = ("hit_at_1", "reciprocal_rank", "r_precision", "recall_at_3", "ndcg_at_3")
    return {
        t: {"n": sum(1 for r in rows if r.get("type") == t)}
        | {m: _mean([r[m] for r in rows if r.get("type") == t]) for m in metrics}
        for t in types
    }


def _fmt(value: float | None) -> str:
    return "  -  " if value is None else f"{value:.3f}"


def format_report(report: Mapping[str, Any], top: int = 3) -> str:
    """A plain-text table of an :func:`evaluate_retrieval` result: the means, then one line a query.

    Scored queries show their R-precision, the ranks of the relevant products and the best-ranked
    names; queries for absent products show only the best similarity. Introduced in 08_evaluating_image_rag.
    """
    lines = [
        f"Model {report['model']}: {report['n_queries']} queries"
        + (f" (+{report['n_absent']} for absent products)" if report.get("n_absent") else ""),
        f"  hit@1 {_fmt(report['hit_at_1'])}   MRR {_fmt(report['mrr'])}   R-precision {_fmt(report['r_precision'])}"
        f"   recall@3 {_fmt(report.get('recall_at_3'))}   nDCG@3 {_fmt(report.get('ndcg_at_3'))}",
    ]
    for kind, row in (report.get("by_type") or {}).items():
        lines.append(
            f"  {kind:<12} n={row['n']:<3} hit@1 {_fmt(row['hit_at_1'])}   R-precision {_fmt(row['r_precision'])}"
        )
    if report.get("refusal"):
        r = report["refusal"]
        lines.append(
            f"  not-in-catalog threshold {r['threshold']:.3f}: false accepts {r['false_accept']:.0%} "
            f"of {r['n_absent']}, false rejects {r['false_reject']:.0%} of {r['n_present']}"
        )
    lines += [
        "",
        f"{'R-prec':>6}  {'best sim':>8}  {'ranks':<12} query -> top {top}",
    ]
    for row in report["per_query"]:
        ranks = ",".join(map(str, row["ranks"])) if row["ranks"] else "absent"
        if len(ranks) > 12:
            ranks = ranks[:11] + "…"
        lines.append(
            f"{_fmt(row['r_precision']):>6}  {row['best_similarity']:8.3f}  {ranks:<12} "
            f"{row['query']} -> {', '.join(row['top'][:top])}"
        )
    return "\n".join(lines)


def run_eval(
    queries_path: str | os.PathLike | None = None,
    catalog_path: str | os.PathLike | None = None,
    model: str | os.PathLike | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Render a catalog, embed its images with ``load_clip(model)`` and evaluate labelled queries.

    The queries come from ``queries_path``, or are generated from the catalog when it is None.
    The catalog is the default eight products when ``catalog_path`` is None. Backs
    ``python -m course_utils eval``.
    """
    products = load_catalog(catalog_path) if catalog_path is not None else default_catalog()
    queries = load_queries(queries_path) if queries_path is not None else generate_queries(products)
    embedder = load_clip(model, device)
    with tempfile.TemporaryDirectory(prefix="course-eval-") as tmp:
        paths = render_catalog(products, tmp)
        image_embeddings = embedder.embed_images(paths)
    return evaluate_retrieval(queries, products, image_embeddings, embedder)
