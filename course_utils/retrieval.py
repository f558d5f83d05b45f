"""Retrieval: a question (or a picture) in, ranked catalog hits out.

Two plans. ``none`` is plain CLIP top-k: embed the question, rank every image. ``hybrid`` adds
the rules of :mod:`course_utils.query`: price limits, cheapest / most expensive and category
words are applied to the catalog's metadata, because a picture cannot tell a price.

A picture is a query too (:func:`retrieve_by_image`): CLIP's image tower embeds it into the same
space, and "like this, but blue" adds the words' embedding to the picture's.
Introduced in 03_image_retrieval (plain, by picture) and 08_evaluating_image_rag (hybrid).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from .calibration import image_refusal_calibration, refusal_calibration
from .catalog import Product
from .embeddings import l2_normalize
from .errors import CourseError
from .images import UnusableImage, open_image
from .index import MetadataFilter, VectorIndex, check_k, top_k
from .query import QueryIntent, parse_question
from .query_views import embed_picture_views, view_similarities

__all__ = [
    "MATCH_Z",
    "PLANS",
    "STAND_OUT_Z",
    "TEXT_WEIGHT",
    "Hit",
    "QueryImage",
    "Retrieval",
    "check_query",
    "compose_query",
    "open_query_image",
    "retrieve",
    "retrieve_by_image",
    "z_scores",
]

PLANS = ("hybrid", "none")
MAX_QUERY_CHARS = 1000
#: A hit "stands out" when its similarity is this many standard deviations above the catalog's
#: mean. Relative, because CLIP similarities have no absolute scale (0.25 can be a good match).
#: Used only where no threshold can be calibrated (a photo folder without labels).
STAND_OUT_Z = 1.0
MATCH_Z = 1.6
#: How much the words count in a picture + words query: 0 is the picture alone, 1 the words alone.
#: 0.7 ranked best on the 48-product test catalog and as well as any on the default one
#: (docs/benchmarks/image_queries_*.json).
TEXT_WEIGHT = 0.7
#: The rows most similar to a query picture are compared with it pixel by pixel: the query may be
#: the catalog image itself. The search embeds views of the picture, not its exact pixels, so the
#: similarity alone cannot tell; the catalog image is always among the very best few.
_EXACT_CANDIDATES = 5

QueryImage = str | os.PathLike | bytes | Image.Image


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
    exact: bool = False  # the query picture itself: the same pixels as this catalog image

    def to_dict(self) -> dict:
        return {
            "rank": self.rank,
            "name": self.product.name,
            "similarity": round(self.similarity, 4),
            "weak": self.weak,
            "exact": self.exact,
            "path": self.path,
            "product": self.product.to_dict(),
        }


@dataclass(frozen=True)
class Retrieval:
    """The hits for one query (iterable like a list) and how they were found.

    For a query by picture, ``query_image`` names the picture and ``query`` holds its words, if any.
    """

    query: str
    hits: tuple[Hit, ...]
    plan: str
    match: bool
    intent: QueryIntent = field(repr=False, default_factory=QueryIntent)
    note: str = ""  # e.g. that a long query was cut to what CLIP reads
    query_image: str | None = None

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
    strong, match = _judge(scores, calibration)
    intent = parse_question(query, sorted({p.category for p in index.products}))
    plain = "none" if plan == "none" else "visual"
    rows, used, match, strong = _rank(index, scores, strong, match, intent, k, plan, intent.has_visual, plain)
    hits = tuple(
        Hit(rank, index.products[i], index.paths[i], float(scores[i]), weak=not bool(strong[i]))
        for rank, i in enumerate(rows, start=1)
    )
    return Retrieval(query, hits, used, match, intent, note)


def _judge(scores: np.ndarray, calibration: dict[str, float] | None) -> tuple[np.ndarray, bool]:
    """Which hits are strong, and whether the best is a match: by the calibrated threshold if any."""
    threshold = calibration["threshold"] if calibration else None
    if threshold is None:  # no labels to calibrate on (a photo folder): judge by how far hits stand out
        z = z_scores(scores)
        return z >= STAND_OUT_Z, len(scores) == 1 or float(z.max()) >= MATCH_Z
    strong = scores >= threshold
    return strong, bool(strong.any())


def _rank(
    index: VectorIndex,
    scores: np.ndarray,
    strong: np.ndarray,
    match: bool,
    intent: QueryIntent,
    k: int,
    plan: str,
    visual: bool,
    label: str,
) -> tuple[list[int], str, bool, np.ndarray]:
    """The rows to show, the plan used (``label`` when no rule applies), and the verdicts.

    The metadata alone may decide the verdicts: then no hit is visually weak.
    """
    if plan == "none" or not (intent.has_price or intent.categories):
        return list(top_k(scores, k)), label, match, strong
    rows, used = _plan_rows(index, scores, strong, intent, k, visual)
    if not visual:
        return rows, used, bool(rows), np.ones_like(strong)
    return rows, used, match, strong


def _plan_rows(
    index: VectorIndex, scores: np.ndarray, strong: np.ndarray, intent: QueryIntent, k: int, visual: bool
) -> tuple[list[int], str]:
    """Rows for a question with price or category rules: candidates, filters, then order."""
    rules = MetadataFilter(frozenset(intent.categories), intent.min_price, intent.max_price)
    allowed = set(index.rows_where(rules))
    if visual:
        # the look (visual words, or the query picture) chooses the candidates: the images that match it
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


# --------------------------------------------------------------------------- queries by picture


def open_query_image(image: QueryImage, name: str | None = None) -> tuple[Image.Image, str]:
    """The shopper's picture as RGB, and a name for it: the path, the upload's file name, or a description.

    Anything that is not a usable picture is a :class:`CourseError` that says why in one line.
    """
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        label = name or f"uploaded image ({len(data)} bytes)"
        source: Any = data
    elif isinstance(image, Image.Image):
        label, source = name or "a PIL image", image
    elif isinstance(image, (str, os.PathLike)):
        label, source = name or str(image), image
    else:
        raise CourseError(
            f"A {type(image).__name__} is not a picture: pass a file path, the file's bytes or a PIL image."
        )
    try:
        return open_image(source, name=label if isinstance(source, bytes) else None), label
    except UnusableImage as exc:
        raise CourseError(f"The query image {label} cannot be used: {exc.reason}.") from None


def _check_weight(weight: float) -> None:
    if not 0.0 <= weight <= 1.0:  # also refuses NaN
        raise CourseError(f"The words' weight must be between 0 and 1, got {weight!r}.")


def compose_query(image_vector: np.ndarray, text_vector: np.ndarray, weight: float = TEXT_WEIGHT) -> np.ndarray:
    """A picture and words as one query ("like this, but blue"): their embeddings mixed, ``weight`` for the words.

    The cosine of the mixed vector with an image is proportional to
    ``(1 - weight) * picture similarity + weight * words similarity``: the two rankings are
    added. A picture is far more similar to pictures than words are, so the words need a large
    weight before they move the ranking.
    Introduced in 03_image_retrieval.
    """
    _check_weight(weight)
    return l2_normalize((1.0 - weight) * np.asarray(image_vector) + weight * np.asarray(text_vector))


def _stored_size(path: str) -> tuple[int, ...]:
    """The size in an image file's header (EXIF rotation may swap it), or () when it cannot be read."""
    try:
        with Image.open(path) as image:
            return image.size
    except Exception:  # Pillow raises many types on damaged files; such a file is no exact match
        return ()


def _exact_rows(picture: Image.Image, index: VectorIndex, scores: np.ndarray) -> set[int]:
    """Rows whose image has exactly the query's pixels: the query picture is in the catalog."""
    pixels = np.asarray(picture)
    exact = set()
    for row in top_k(scores, min(_EXACT_CANDIDATES, len(scores))):
        if sorted(_stored_size(index.paths[row])) != sorted(picture.size):
            continue  # read from the header: a photo of another size is never decoded
        try:
            other = open_image(index.paths[row])
        except CourseError:
            continue
        if other.size == picture.size and np.array_equal(np.asarray(other), pixels):
            exact.add(int(row))
    return exact


def retrieve_by_image(
    image: QueryImage,
    index: VectorIndex,
    embedder: Any,
    k: int = 3,
    text: str | None = None,
    weight: float = TEXT_WEIGHT,
    plan: str = "hybrid",
    calibration: dict[str, float] | None = None,
    text_calibration: dict[str, float] | None = None,
    image_name: str | None = None,
    views: bool = True,
) -> Retrieval:
    """Find the ``k`` catalog images most like a picture (a path, the file's bytes or a PIL image).

    ``image_name`` names the picture in the result and in messages (an upload's file name).
    ``views`` (the default) makes the search robust to photo-like changes: the product is framed
    as catalog pictures are and also looked at turned
    (:func:`course_utils.query_views.picture_views`); ``views=False`` embeds the picture exactly
    as given, one forward pass.

    With ``text`` ("blue", "like this, but striped") the picture and the words are one query
    (:func:`compose_query`, ``weight`` for the words), and a hit is strong when it has what the
    words ask for (the text threshold); words that only set price or category rules ("under
    $20") filter and order the hits instead. The picture alone is judged by the picture threshold
    (:func:`course_utils.calibration.image_refusal_calibration`): image-to-image similarities
    live on a much higher scale than text-to-image ones. A catalog image with the very pixels of
    the query comes back as what it is, an ``exact`` hit. Price and category words apply as in
    :func:`retrieve` (``plan="hybrid"``). Introduced in 03_image_retrieval.
    """
    if plan not in PLANS:
        raise CourseError(f"Unknown retrieval plan {plan!r}; use one of {', '.join(PLANS)}.")
    k = check_k(k)
    _check_weight(weight)
    words = check_query(text) if text is not None and text.strip() else ""
    picture, label = open_query_image(image, image_name)
    index.check_model(embedder.model_id)
    view_vectors = embed_picture_views([picture], embedder, views)[0]
    image_vector = view_vectors[0]  # the framed, upright view: the one words are mixed with
    image_scores = view_similarities(view_vectors, index)
    intent = parse_question(words, sorted({p.category for p in index.products})) if words else QueryIntent()
    # words that only set rules ("under $20", "tools") filter and order; they draw no picture
    rules_only = not intent.has_visual and (intent.has_price or bool(intent.categories))
    composed = bool(words) and weight > 0 and not rules_only
    if composed:
        text_vector = embedder.embed_texts([words])[0]
        scores = index.similarities(compose_query(image_vector, text_vector, weight))
        if text_calibration is None:
            text_calibration = refusal_calibration(index, embedder)
        # the words say what must hold, as in a text query; the picture orders what holds
        strong, match = _judge(index.similarities(text_vector), text_calibration)
    else:
        scores = image_scores
        if calibration is None:
            calibration = image_refusal_calibration(index, embedder, views)
        strong, match = _judge(image_scores, calibration)
    exact = _exact_rows(picture, index, image_scores)
    if exact and not composed:
        # the picture as given has these rows' very pixels, hence their embedding: similarity 1
        # (the views, framed and turned, score a little less)
        scores[list(exact)] = 1.0
        strong[list(exact)] = True
        match = True
    plain = "image + words" if composed else "image"
    rows, used, match, strong = _rank(index, scores, strong, match, intent, k, plan, True, plain)
    hits = tuple(
        Hit(rank, index.products[i], index.paths[i], float(scores[i]), weak=not bool(strong[i]), exact=i in exact)
        for rank, i in enumerate(rows, start=1)
    )
    note = f"Ranked by the picture and the words (words weight {weight:.2f})." if composed else ""
    note = " ".join(filter(None, [note, _length_note(words, embedder) if words else ""]))
    return Retrieval(words, hits, used, match, intent, note, query_image=label)
