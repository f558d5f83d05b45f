"""The Image-RAG pipeline: retrieve product images, then let a multimodal LLM answer from them.

:meth:`ImageRAG.ask` also answers under the conditions of an ablation, each of which changes
one thing about the evidence while the system prompt stays the same but for the one sentence
that says what is attached (:func:`course_utils.prompts.system_prompt`):

- ``none``: the bare question; ``metadata``: the retrieved products' rows, no images;
- ``images``: the retrieved images, each with only its product name; ``both``: rows and images;
- ``all-images``: every catalog image, no retrieval (refused above :data:`ALL_IMAGES_LIMIT`);
- ``random``: ``k`` random products' rows and images, the same for the same seed and question.

A shopper may ask with a photo ("do you have something like this?"): retrieval then starts from
the picture, and the LLM receives the shopper's photo first, labelled as theirs, under every
condition (the photo is part of the question), then the catalog's images.

Introduced in 05_image_rag_pipeline (``both`` and ``none``, a photo) and 10_what_the_pictures_add.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any

import numpy as np

from .errors import CourseError
from .grounding import GroundingReport, check_grounding
from .images import UnusableImage, check_image_file
from .index import VectorIndex, check_k
from .llm import OfflineAnswerer, can_pin_provider
from .prompts import (
    CONDITIONS,
    METADATA_VIEWS,
    build_context,
    build_plain_prompt,
    build_rag_prompt,
    context_entry,
    id_entry,
    system_prompt,
)
from .query import parse_question
from .retrieval import Hit, QueryImage, Retrieval, check_query, open_query_image, retrieve, retrieve_by_image

__all__ = [
    "ALL_IMAGES_LIMIT",
    "CONDITIONS",
    "PHOTO_QUESTION",
    "ImageRAG",
    "RAGResult",
    "Sent",
    "build_metadata_context",
    "check_condition",
    "check_view",
]

#: The most images ``all-images`` sends in one request. Past it, the long-context baseline costs
#: more than a shop would pay per question, and many providers refuse the request anyway.
ALL_IMAGES_LIMIT = 50
#: Characters per text token, for estimating how many prompt tokens the images took.
CHARS_PER_TOKEN = 4
#: The question asked about a photo sent without words.
PHOTO_QUESTION = "Do you have something like this?"


def build_metadata_context(hits: Sequence[Hit], view: str = "full") -> str:
    """The ranked product lines, fenced as data, that go into the prompt.

    ``view="shop"`` leaves out the look (colour, shape, pattern). Introduced in 04_multimodal_generation.
    """
    return build_context(context_entry(h.rank, h.product, h.similarity, view) for h in hits)


@dataclass(frozen=True)
class Sent:
    """What one request carried: images, characters of text, and the tokens the provider reported.

    ``image_tokens_source`` says where ``image_tokens`` comes from: ``reported`` (the provider
    counts image tokens apart), ``estimated`` (reported prompt tokens less the text's characters
    / 4), ``no images`` or ``not reported``. Introduced in 10_what_the_pictures_add.
    """

    images: int
    prompt_chars: int
    prompt_tokens: int | None = None
    image_tokens: int | None = None
    image_tokens_source: str = "not reported"

    @classmethod
    def measure(cls, n_images: int, text_chars: int, usage: Any) -> Sent:
        prompt_tokens = getattr(usage, "prompt_tokens", None)
        reported = getattr(usage, "image_tokens", None)
        if n_images == 0:
            return cls(0, text_chars, prompt_tokens, 0, "no images")
        if reported is not None:
            return cls(n_images, text_chars, prompt_tokens, reported, "reported")
        if prompt_tokens is not None:
            estimate = max(0, prompt_tokens - math.ceil(text_chars / CHARS_PER_TOKEN))
            return cls(n_images, text_chars, prompt_tokens, estimate, "estimated")
        return cls(n_images, text_chars)

    def to_dict(self) -> dict:
        return {
            "images": self.images,
            "prompt_chars": self.prompt_chars,
            "prompt_tokens": self.prompt_tokens,
            "image_tokens": self.image_tokens,
            "image_tokens_source": self.image_tokens_source,
        }


@dataclass(frozen=True)
class RAGResult:
    """One answer with everything needed to judge it: the hits, the prompt, who answered, what was sent."""

    question: str
    answer: str
    provider: str
    model: str
    prompt: str
    used_rag: bool
    hits: tuple[Hit, ...] = ()
    plan: str = "none"
    match: bool = True
    grounding: GroundingReport | None = None
    note: str = ""
    attempts: tuple = field(default=(), repr=False)
    images_sent: int = 0
    condition: str = "both"
    metadata: str = "full"
    sent: Sent | None = None
    system_prompt: str = field(default="", repr=False)
    cached: bool = False  # the answer was stored by an earlier, identical call (no request made)
    query_image: str | None = None  # the shopper's photo, by name, when the question came with one

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "query_image": self.query_image,
            "answer": self.answer,
            "provider": self.provider,
            "llm_model": self.model,
            "used_rag": self.used_rag,
            "plan": self.plan,
            "match": self.match,
            "note": self.note,
            "results": [h.to_dict() for h in self.hits],
            "grounding": self.grounding.to_dict() if self.grounding else None,
            "images_sent": self.images_sent,
            "attempts": [asdict(a) for a in self.attempts if is_dataclass(a)],
            "condition": self.condition,
            "metadata": self.metadata,
            "sent": self.sent.to_dict() if self.sent else None,
            "cached": self.cached,
        }


def check_condition(condition: str) -> str:
    """``condition`` if it is one of :data:`CONDITIONS`, else a :class:`CourseError` naming them."""
    if condition not in CONDITIONS:
        raise CourseError(f"Unknown condition {condition!r}; use one of {', '.join(CONDITIONS)}.")
    return condition


def check_view(view: str) -> str:
    """``view`` if it is one of the metadata views (``full``, ``shop``), else a :class:`CourseError`."""
    if view not in METADATA_VIEWS:
        raise CourseError(f"Unknown metadata view {view!r}; use one of {', '.join(METADATA_VIEWS)}.")
    return view


class ImageRAG:
    """Retrieve with any :class:`~course_utils.index.VectorIndex` and a CLIP embedder, answer with any LLM.

    ``llm`` needs ``generate(prompt, system_prompt=None)`` and
    ``generate_multimodal(prompt, images, system_prompt=None)`` (see :class:`~course_utils.llm.LLM`);
    the course's cascade and an ``llm_cascade`` cascade both fit. Without one, the offline
    answerer is used. ``metadata`` is the view of the rows in the prompt (``full`` or ``shop``);
    ``seed`` fixes the products of the ``random`` condition.
    Introduced in 05_image_rag_pipeline.
    """

    def __init__(
        self,
        index: VectorIndex,
        embedder: Any,
        llm: Any = None,
        plan: str = "hybrid",
        metadata: str = "full",
        seed: int = 0,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.llm = llm if llm is not None else OfflineAnswerer()
        self.plan = plan
        self.metadata = check_view(metadata)
        self.seed = seed

    def __repr__(self) -> str:
        return f"ImageRAG({self.index!r}, llm={type(self.llm).__name__}, metadata={self.metadata!r})"

    def retrieve(
        self,
        question: str,
        k: int = 3,
        plan: str | None = None,
        image: QueryImage | None = None,
        image_name: str | None = None,
    ) -> Retrieval:
        """Retrieve for a question, or for a photo and the question's words (see :meth:`answer`)."""
        if image is None:
            return retrieve(question, self.index, self.embedder, k=k, plan=plan or self.plan)
        intent = parse_question(question or "", sorted({p.category for p in self.index.products}))
        # only words that name a look or a rule join the photo: "do you have this?" adds nothing to it
        words = question if intent.has_attributes or intent.has_price else None
        return retrieve_by_image(
            image, self.index, self.embedder, k=k, text=words, plan=plan or self.plan, image_name=image_name
        )

    def answer(
        self,
        question: str,
        k: int = 3,
        plan: str | None = None,
        metadata: str | None = None,
        image: QueryImage | None = None,
        image_name: str | None = None,
    ) -> RAGResult:
        """Retrieve the top-k products and ask the LLM with their images and metadata (``both``).

        Every hit goes into the prompt as a catalog entry; its image goes along when the file is
        still there and the LLM takes that many images (``max_images``). The note says what was left out.

        With ``image`` (a path, the file's bytes or a PIL image: the shopper's photo) retrieval
        starts from the photo, joined by the question's words when they name a colour, shape,
        pattern, category or price; the LLM receives the photo first, labelled as the shopper's,
        then the retrieved catalog images. An empty question asks :data:`PHOTO_QUESTION`.
        ``image_name`` names the photo in the result (an upload's file name).
        """
        return self.ask(question, "both", k=k, plan=plan, metadata=metadata, image=image, image_name=image_name)

    def answer_without_rag(
        self,
        question: str,
        provider: str | None = None,
        model: str | None = None,
        image: QueryImage | None = None,
        image_name: str | None = None,
    ) -> RAGResult:
        """Ask the same LLM the bare question, with no catalog context and no catalog images (``none``).

        Pass ``provider`` and ``model`` (those of a RAG answer) to pin the call to what answered
        with RAG, so the comparison is one model against itself. A model is never pinned without
        its provider: an LLM that cannot pin a provider (an ``llm_cascade`` cascade applies
        ``model=`` to every provider it tries) is asked unpinned, and the result's ``note`` says
        that the two answers may come from different models. The shopper's photo (``image``)
        goes along, as it would to a chatbot without the catalog.
        """
        return self.ask(question, "none", provider=provider, model=model, image=image, image_name=image_name)

    def compare(
        self,
        question: str,
        k: int = 3,
        metadata: str | None = None,
        image: QueryImage | None = None,
        image_name: str | None = None,
    ) -> tuple[RAGResult, RAGResult]:
        """The same question with retrieval (``both``) and without (``none``), under one system prompt.

        The blind call is pinned to the provider and model that answered with retrieval, where
        the LLM can be pinned. A photo (``image``) goes to both.
        """
        with_rag = self.answer(question, k=k, metadata=metadata, image=image, image_name=image_name)
        without = self.answer_without_rag(
            question, provider=with_rag.provider, model=with_rag.model, image=image, image_name=image_name
        )
        return with_rag, without

    def ask(
        self,
        question: str,
        condition: str = "both",
        k: int = 3,
        plan: str | None = None,
        metadata: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        image: QueryImage | None = None,
        image_name: str | None = None,
    ) -> RAGResult:
        """Answer ``question`` under one evidence ``condition`` (see the module docstring).

        ``metadata`` overrides the view of the rows for this call; ``provider`` and ``model``
        pin the LLM as :meth:`answer_without_rag` explains; ``image`` is the shopper's photo
        (:meth:`answer`). The result records the condition and what was sent (:class:`Sent`).
        Introduced in 10_what_the_pictures_add.
        """
        condition = check_condition(condition)
        view = check_view(metadata or self.metadata)
        photo, picture, photo_name = None, None, None
        if image is None:
            question = check_query(question)
        else:
            # decoded once, here: a bad photo fails before any request, and retrieval reuses the pixels
            picture, photo_name = open_query_image(image, image_name)
            photo = bytes(image) if isinstance(image, (bytearray, memoryview)) else image  # what the LLM is sent
            question = check_query(question) if (question or "").strip() else PHOTO_QUESTION
        pins, pin_note = self._pins(provider, model)
        found: Retrieval | None = None
        hits: tuple[Hit, ...] = ()
        shows_photo = photo is not None
        prompt, match, used = build_plain_prompt(question, shopper_photo=shows_photo), True, "none"
        notes = [pin_note]
        if condition in ("all-images", "random"):
            hits = self._all_images(question) if condition == "all-images" else self._random(question, k)
            used = "every catalog image" if condition == "all-images" else f"random (seed {self.seed})"
        elif condition != "none":
            found = self.retrieve(question, k=k, plan=plan, image=picture, image_name=photo_name)
            hits, match, used = found.hits, found.match, found.plan
            question = found.query if photo is None else question
            notes.insert(0, found.note)
        sent: list[Hit] = []
        if condition not in ("none", "metadata"):
            sent, image_note = self._images_to_send(hits, room_taken=int(shows_photo))
            notes.append(image_note)
        if condition != "none":
            ids_only = condition in ("images", "all-images")
            entries = [
                id_entry(h.rank, h.product) if ids_only else context_entry(h.rank, h.product, h.similarity, view)
                for h in hits
            ]
            ranks = [h.rank for h in sent] if condition != "metadata" and len(sent) < len(hits) else None
            prompt = build_rag_prompt(
                question, build_context(entries), len(sent), match, image_ranks=ranks, shopper_photo=shows_photo
            )
        images = ([photo] if shows_photo else []) + [h.path for h in sent]
        note = " ".join(part for part in notes if part)
        system = system_prompt(condition)
        if images:
            response = self.llm.generate_multimodal(prompt, images, system_prompt=system, **pins)
        else:
            response = self.llm.generate(prompt, system_prompt=system, **pins)
        usage = getattr(response, "usage", None)
        return RAGResult(
            question=question,
            answer=response.text,
            provider=response.provider,
            model=response.model,
            prompt=prompt,
            used_rag=condition != "none",
            hits=hits,
            plan=used,
            match=match,
            grounding=check_grounding(response.text, hits, self.index.products),
            note=note,
            attempts=tuple(getattr(response, "attempts", ()) or ()),
            cached=getattr(response, "cached", False) is True,
            images_sent=len(images),
            condition=condition,
            metadata=view,
            sent=Sent.measure(len(images), len(system) + len(prompt), usage),
            system_prompt=system,
            query_image=photo_name,
        )

    def _pins(self, provider: str | None, model: str | None) -> tuple[dict[str, str], str]:
        if provider and can_pin_provider(self.llm):
            return {"provider": provider, **({"model": model} if model else {})}, ""
        if provider:
            return {}, (
                f"{type(self.llm).__name__} cannot pin a provider, so this answer may come from another "
                f"model than {provider} ({model or 'its default model'})."
            )
        return {}, ""

    def _images_to_send(self, hits: Sequence[Hit], room_taken: int = 0) -> tuple[list[Hit], str]:
        """The hits whose images can go to the LLM, and a note on those that cannot.

        An image file may have gone, or become something that is not a file, since indexing: it
        is left out (checked without opening it, so a FIFO cannot block) and the answer goes on.
        ``room_taken`` images of the request are spoken for (the shopper's photo).
        """
        sent, missing = [], []
        for hit in hits:
            try:
                check_image_file(hit.path)
            except UnusableImage as exc:
                missing.append(f"{hit.product.name} ({exc.reason})")
                continue
            sent.append(hit)
        notes = []
        if missing:
            notes.append(f"No image sent for {', '.join(missing)}: the LLM saw only the catalog entry.")
        limit = getattr(self.llm, "max_images", None)
        if isinstance(limit, int) and len(sent) > limit - room_taken:
            room = max(0, limit - room_taken)
            notes.append(f"The LLM takes at most {limit} images per request: the first {room} were sent.")
            sent = sent[:room]
        return sent, " ".join(notes)

    def _similarities(self, question: str) -> np.ndarray:
        self.index.check_model(self.embedder.model_id)
        return self.index.similarities(self.embedder.embed_texts([question])[0])

    def _all_images(self, question: str) -> tuple[Hit, ...]:
        n = len(self.index)
        if n > ALL_IMAGES_LIMIT:
            raise CourseError(
                f"all-images sends every catalog image in one request, and this catalog has {n}: the course "
                f"stops at {ALL_IMAGES_LIMIT}. Use retrieval (the 'images' condition) or a smaller catalog."
            )
        limit = getattr(self.llm, "max_images", None)
        if isinstance(limit, int) and n > limit:
            raise CourseError(
                f"all-images sends all {n} catalog images, but this LLM takes at most {limit} per request; "
                f"use get_cascade(max_images={ALL_IMAGES_LIMIT})."
            )
        scores = self._similarities(question)
        return tuple(
            Hit(i + 1, product, path, float(scores[i]))
            for i, (product, path) in enumerate(zip(self.index.products, self.index.paths, strict=True))
        )

    def _random(self, question: str, k: int) -> tuple[Hit, ...]:
        k = min(check_k(k), len(self.index))
        rng = np.random.default_rng([self.seed, zlib.crc32(question.encode("utf-8"))])
        rows = rng.choice(len(self.index), size=k, replace=False)
        scores = self._similarities(question)
        return tuple(
            Hit(rank, self.index.products[i], self.index.paths[i], float(scores[i]))
            for rank, i in enumerate((int(r) for r in rows), start=1)
        )
