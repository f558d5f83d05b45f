"""What the course expects of a model's results, kept as data, and the verdict a notebook prints.

The notebooks check two kinds of things. **Invariants** hold for any CLIP: shapes, unit norms, rank
order equals score order, panel wiring, prompt content. The notebooks assert them. **Claims**
describe what a good model does: "a red circle" finds Widget A first, the black hexagon is
refused. They depend on the model, so a notebook measures each claim and prints a verdict with its
figure through :func:`check`. A claim stops the notebook only for a model the course has verified
it with. Those models are listed in :data:`VERIFIED_MODELS`, so another verified model is one
more entry there, not a change to any notebook.

Introduced in 02_clip_embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CLAIMS", "VERIFIED_MODELS", "Claim", "VerifiedModel", "check", "verified_model"]


@dataclass(frozen=True)
class Claim:
    """One thing a good model does, in words, and the section that explains a miss."""

    statement: str
    section: str


@dataclass(frozen=True)
class VerifiedModel:
    """A model the course has run every notebook with, and the claims it satisfies."""

    name: str
    claims: frozenset[str]


CLAIMS: dict[str, Claim] = {
    # 02_clip_embeddings
    "02.red-circle-first": Claim('"a red circle" is most similar to Widget A', "Every text against every image"),
    "02.descriptions-first": Claim("every description finds its own product first", "Every text against every image"),
    "02.pairs-above-others": Claim(
        "a description is more similar to its own picture than to the others, on average",
        "Contrastive training in one picture",
    ),
    "02.no-modality-gap": Claim(
        "every sentence has its own picture as nearest neighbour: no modality gap", "A map of the shared space"
    ),
    # 03_image_retrieval
    "03.red-circle-first": Claim('"red circular product" ranks Widget A first', "Reading similarity scores"),
    "03.red-circle-matches": Claim(
        '"red circular product" counts as a match: its best hit reaches the threshold', "Reading similarity scores"
    ),
    "03.missing-scores-lower": Claim(
        "the black hexagon's best hit scores below the red circle's", "Something the catalog does not have"
    ),
    "03.missing-refused": Claim(
        'nothing matches "black hexagonal product": match is False', "Something the catalog does not have"
    ),
    "03.photo-finds-product": Claim(
        "a phone-like copy of Gadget Y's picture (other light, JPEG quality 30) finds Gadget Y first",
        "Search with a picture",
    ),
    "03.pictures-score-higher": Claim(
        "pictures score higher against pictures than sentences do, and the picture threshold is the higher one",
        "Two scales: a picture against pictures, a sentence against pictures",
    ),
    "03.light-and-jpeg-harmless": Claim(
        "JPEG quality 30 keeps every product first (hit@1 1.0), and other light nearly every one (hit@1 at least 0.875)",
        "How robust is a picture query?",
    ),
    "03.views-find-photos": Claim(
        "with the framed and turned views, every slanted, distant and in-a-room copy finds its product (hit@1 1.0 each)",
        "Helping the model: frame the product, and look at it turned",
    ),
    "03.picture-plus-yellow": Claim(
        'the red circle\'s picture plus the word "yellow" finds Gadget Y, the yellow circle',
        "Like this, but blue: a picture plus words",
    ),
    # 04_multimodal_generation
    "04.sneaky-retrieved": Claim(
        'the red Widget R is among the top 3 for "What red products do you have?"',
        "5. Prompt injection through the catalog",
    ),
    # 05_image_rag_pipeline
    "05.seed-retrieval": Claim("every seed question retrieves the right products", "2. With RAG versus without"),
    "05.red-first": Claim(
        'retrieval puts Widget A first for "What red products do you have?"', "2. With RAG versus without"
    ),
    "05.answer-names-red": Claim("the grounded answer names Widget A", "3. Hallucination, and what grounding buys you"),
    # 06_exercises and 06_exercises_solutions
    "06.training-beats-random": Claim(
        "the trained mini-CLIP beats random weights on hit@1 and R-precision", "Exercise (b)"
    ),
    "06.sample-photos": Claim("most sample photos are found by colour and pattern words", "Exercise (a)"),
    "06.twins-look-alike": Claim(
        "Widget A and its twin Widget A2 are almost one point, similarity above 0.95", "Exercise (c)"
    ),
    "06.price-splits-twins": Claim("the hybrid plan tells the twins apart by price", "Exercise (c)"),
    "06.look-alikes-found": Claim(
        "a query that names the difference finds Widget O and Gadget Z2 first", "Exercise (c)"
    ),
    "06.clip-misses-cheapest": Claim(
        'CLIP alone does not put the cheapest striped product first for "cheapest striped"', "Exercise (d)"
    ),
    "06.rerank-finds-cheapest": Claim(
        "both re-rankers move the cheapest striped product first, in the same order", "Exercise (d)"
    ),
    # 08_evaluating_image_rag
    "08.category-worst": Claim("category queries score below every visual query type in R-precision", "The metrics"),
    "08.hybrid-seed-answers": Claim("the hybrid planner answers every seed question right", "Hybrid retrieval"),
    "08.plain-misses-priciest": Claim(
        'plain top-3 does not retrieve Tool M for "the most expensive product"', "Hybrid retrieval"
    ),
    "08.held-out-refusal": Claim(
        "at most one false accept and one false reject on the held-out questions",
        '"We don\'t have that": out-of-catalog refusal',
    ),
    "08.black-hexagon-refused": Claim(
        'the pipeline refuses "a black hexagonal product": no match, every hit weak',
        '"We don\'t have that": out-of-catalog refusal',
    ),
    # 10_what_the_pictures_add: these depend on the answering LLM too, so a notebook passes the
    # CLIP alone only when the offline answerer answered, and otherwise names the pair
    "10.images-beat-rows-on-looks": Claim(
        "with shop rows, images and both beat rows alone on the visual question types", "Reading the chart"
    ),
    "10.rows-beat-images-on-price": Claim(
        "with shop rows, rows alone and both beat images alone on price questions", "Reading the chart"
    ),
    "10.full-rows-match-on-looks": Claim(
        "with full rows, rows alone score what rows and images score on the visual question types",
        "6. When the rows do describe the looks",
    ),
    "10.images-name-red": Claim(
        'under images, the answer to "What red products do you have?" names Widget A alone, and under shop rows none',
        "3. How the offline answerer looks",
    ),
}

# Model id (as CLIPEmbedder.model_id gives it: a folder name plus a hash of the weights) -> what the
# course verified. Retraining the bundled model changes its hash, and its claims must be verified
# again before the new id goes here.
VERIFIED_MODELS: dict[str, VerifiedModel] = {
    "mini-clip@b21fd4c3614d": VerifiedModel("the bundled mini-CLIP", frozenset(CLAIMS)),
}


def _model_id(model: Any) -> str:
    return str(getattr(model, "model_id", model))


def verified_model(model: Any) -> VerifiedModel | None:
    """The entry for ``model`` (an embedder or a model id) in :data:`VERIFIED_MODELS`, else ``None``."""
    return VERIFIED_MODELS.get(_model_id(model))


def check(claim: str, holds: bool, model: Any, measured: str) -> bool:
    """Print a verdict on one claim, with what was measured; return whether it holds.

    Parameters
    ----------
    claim
        A key of :data:`CLAIMS`, such as ``"03.red-circle-first"``.
    holds
        Whether the claim holds for the results just computed.
    model
        The embedder (or model id) that produced them.
    measured
        The figure behind the verdict, in a few words: ``"Widget A, 0.59"``.

    Raises
    ------
    AssertionError
        When the claim fails for a model the course has verified it with: then the course, not
        the model, is wrong.
    KeyError
        For a claim that is not in :data:`CLAIMS`.

    Introduced in 02_clip_embeddings.
    """
    expected = CLAIMS[claim]
    if holds:
        print(f"✓ {expected.statement} ({measured})")
        return True
    verified = verified_model(model)
    if verified is not None and claim in verified.claims:
        raise AssertionError(f"{verified.name} is verified to satisfy: {expected.statement}; measured: {measured}")
    print(f"✗ {expected.statement}: not with this model ({measured}); see why in “{expected.section}”")
    return False
