"""Retrieval: a question in, ranked catalog hits out.

Two plans. ``none`` is plain CLIP top-k: embed the question, rank every image. ``hybrid`` adds
the rules of :mod:`course_utils.query`: price limits, cheapest / most expensive and category
words are applied to the catalog's metadata, because a picture cannot tell a price.
Introduced in 03_image_retrieval (plain) and 08_evaluating_image_rag (hybrid).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .calibration import refusal_calibration
from .catalog import Product
from .errors import CourseError
from .index import MetadataFilter, VectorIndex, check_k, top_k
from .query import QueryIntent, parse_question

__all__ = ["MATCH_Z", "PLANS", "STAND_OUT_Z", "Hit", "Retrieval", "check_query", "retrieve", "z_scores"]

PLANS = ("hybrid", "none")
MAX_QUERY_CHARS = 1000
#: A hit "stands out" when its similarity is this many standard deviations above the catalog's
#: mean. Relative, because CLIP similarities have no absolute scale (0.25 can be a good match).
#: Used only where no threshold can be calibrated (a photo folder without labels).
STAND_OUT_Z = 1.0
MATCH_Z = 1.6


@dataclass(frozen=True)
class Hit:
    """One retrieved product. ``weak`` marks a hit that does not stand out from the catalog.

    Introduced in 03_image_retrieval.
    """

    rank: int
    product: Product
    path: str
    similarity: float
    weak: bool = False

    def to_dict(self) -> dict:
        return {
            "rank": self.rank,
            "name": self.product.name,
            "similarity": round(self.similarity, 4),
            "weak": self.weak,
            "path": self.path,
            "product": self.product.to_dict(),
        }


@dataclass(frozen=True)
class Retrieval:
    """The hits for one query (iterable like a list) and how they were found."""

    query: str
    hits: tuple[Hit, ...]
    plan: str
    match: bool
    intent: QueryIntent = field(repr=False, default_factory=QueryIntent)
    note: str = ""  # e.g. that a long query was cut to what CLIP reads

    def __iter__(self) -> Iterator[Hit]:
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    def __getitem__(self, i: int) -> Hit:
        return self.hits[i]

    @property
    def products(self) -> list[Product]:
        return [h.product for h in self.hits]

    def plan_dict(self) -> dict:
        return {"name": self.plan, "understood": self.intent.describe()}


def check_query(query: str) -> str:
    """Refuse an empty query before any model runs; shorten an absurdly long one."""
    if not isinstance(query, str) or not query.strip():
        raise CourseError("The query is empty: type what you are looking for, e.g. 'red circle'.")
    if any("\ud800" <= ch <= "\udfff" for ch in query):  # bytes the shell passed that are not UTF-8
        raise CourseError("The query holds bytes that are not UTF-8 text; type it again in a UTF-8 terminal.")
    query = " ".join(query.split())
    return query[:MAX_QUERY_CHARS]


def _length_note(query: str, embedder) -> str:
    """Say so when CLIP will not read the whole query (77 tokens for every CLIP)."""
    tokenizer = getattr(getattr(embedder, "processor", None), "tokenizer", None)
    limit = getattr(embedder, "max_text_tokens", None)
    if tokenizer is None or limit is None:
        return ""
    n = len(tokenizer(query)["input_ids"])
    if n <= limit:
        return ""
    return f"The query is {n} tokens long; CLIP reads only the first {limit}, so the rest was ignored."


def z_scores(scores: np.ndarray) -> np.ndarray:
    """How far each similarity stands above the others, in standard deviations.

    Introduced in 03_image_retrieval.
    """
    spread = float(scores.std())
    return np.zeros_like(scores) if spread < 1e-9 else (scores - scores.mean()) / spread


def retrieve(
    query: str,
    index: VectorIndex,
    embedder: Any,
    k: int = 3,
    plan: str = "hybrid",
    calibration: dict[str, float] | None = None,
) -> Retrieval:
    """Find the ``k`` catalog images that best answer ``query``.

    ``calibration`` (from :func:`course_utils.calibration.calibrate_refusal`) sets the similarity
    a hit needs to be a match; by default it is calibrated once for this index and model.
    Introduced in 03_image_retrieval.
    """
    if plan not in PLANS:
        raise CourseError(f"Unknown retrieval plan {plan!r}; use one of {', '.join(PLANS)}.")
    k = check_k(k)
    query = check_query(query)
    if not len(index):
        raise CourseError("The index holds no images: build it from a folder of images first.")
    index.check_model(embedder.model_id)
    note = _length_note(query, embedder)
    scores = index.similarities(embedder.embed_texts([query])[0])
    if calibration is None:
        calibration = refusal_calibration(index, embedder)
    threshold = calibration["threshold"] if calibration else None
    if threshold is None:  # no labels to calibrate on (a photo folder): judge by how far hits stand out
        z = z_scores(scores)
        strong = z >= STAND_OUT_Z
        match = len(index) == 1 or float(z.max()) >= MATCH_Z
    else:
        strong = scores >= threshold
        match = bool(strong.any())
    intent = parse_question(query, sorted({p.category for p in index.products}))
    if plan == "none" or not (intent.has_price or intent.categories):
        rows = list(top_k(scores, k))
        used = "none" if plan == "none" else "visual"
    else:
        rows, used = _plan_rows(index, scores, strong, intent, k)
        if not intent.has_visual:  # the metadata alone decides what matches: no hit is visually weak
            match, strong = bool(rows), np.ones_like(strong)
    hits = tuple(
        Hit(rank, index.products[i], index.paths[i], float(scores[i]), weak=not bool(strong[i]))
        for rank, i in enumerate(rows, start=1)
    )
    return Retrieval(query, hits, used, match, intent, note)


def _plan_rows(
    index: VectorIndex, scores: np.ndarray, strong: np.ndarray, intent: QueryIntent, k: int
) -> tuple[list[int], str]:
    """Rows for a question with price or category rules: candidates, filters, then order."""
    rules = MetadataFilter(frozenset(intent.categories), intent.min_price, intent.max_price)
    allowed = set(index.rows_where(rules))
    if intent.has_visual:
        # the visual words choose the candidates: the images that match the query
        rows = [i for i in range(len(index)) if strong[i]] or list(top_k(scores, 1))
        used = "hybrid: visual candidates + metadata"
    else:
        rows = list(range(len(index)))
        used = "hybrid: whole catalog + metadata"
    rows = [i for i in rows if i in allowed]
    if intent.sort:
        rows = [i for i in rows if index.products[i].price is not None]  # an unknown price cannot be ranked
        rows.sort(key=lambda i: index.products[i].price, reverse=intent.sort == "desc")
    else:
        rows.sort(key=lambda i: -scores[i])
    return rows[:k], used
