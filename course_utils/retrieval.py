"""Retrieval: a question in, ranked catalog hits out.

Two plans. ``none`` is plain CLIP top-k: embed the question, rank every image. ``hybrid`` adds
the rules of :mod:`course_utils.query`: price limits, cheapest / most expensive and category
words are applied to the catalog's metadata, because a picture cannot tell a price.
Introduced in 03_image_retrieval (plain) and 08_evaluating_image_rag (hybrid).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .catalog import Product
from .errors import CourseError
from .index import ImageIndex, top_k
from .query import QueryIntent, parse_question

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


def match_threshold(index: ImageIndex, embedder) -> float | None:
    """The similarity a best hit needs for the catalog to "have" what was asked, or None.

    Calibrated once per index and model on queries generated from the catalog's own labels
    (see :func:`course_utils.evaluation.calibrate_refusal`), because CLIP similarities have no
    absolute scale: 0.3 is a strong match for one model and a weak one for another.
    Introduced in 03_image_retrieval.
    """
    cached = getattr(index, "_refusal_calibration", None)
    if cached is None or cached[0] != (embedder.model_id, len(index)):
        from .evaluation import calibrate_refusal

        cached = ((embedder.model_id, len(index)), calibrate_refusal(index, embedder))
        index._refusal_calibration = cached
    return cached[1]["threshold"] if cached[1] else None


def z_scores(scores: np.ndarray) -> np.ndarray:
    """How far each similarity stands above the others, in standard deviations.

    Introduced in 03_image_retrieval.
    """
    spread = float(scores.std())
    return np.zeros_like(scores) if spread < 1e-9 else (scores - scores.mean()) / spread


def retrieve(
    query: str,
    index: ImageIndex,
    embedder,
    k: int = 3,
    plan: str = "hybrid",
) -> Retrieval:
    """Find the ``k`` catalog images that best answer ``query``.

    Introduced in 03_image_retrieval.
    """
    if plan not in PLANS:
        raise CourseError(f"Unknown retrieval plan {plan!r}; use one of {', '.join(PLANS)}.")
    if k <= 0:
        raise CourseError(f"k must be at least 1, got {k}.")
    query = check_query(query)
    index.check_model(embedder.model_id)
    note = _length_note(query, embedder)
    scores = index.similarities(embedder.embed_texts([query])[0])
    threshold = match_threshold(index, embedder)
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
    index: ImageIndex, scores: np.ndarray, strong: np.ndarray, intent: QueryIntent, k: int
) -> tuple[list[int], str]:
    """Rows for a question with price or category rules: candidates, filters, then order."""
    allowed = set(index.rows_where(intent.categories, intent.min_price, intent.max_price))
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
