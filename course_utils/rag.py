"""The Image-RAG pipeline: retrieve product images, then let a multimodal LLM answer from them.

A shopper may ask with a photo ("do you have something like this?"): retrieval then starts from
the picture, and the LLM receives the shopper's photo first, labelled as theirs, then the
retrieved catalog images. Introduced in 05_image_rag_pipeline (photos: 03_image_retrieval).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .grounding import GroundingReport, check_grounding
from .index import VectorIndex
from .llm import OfflineAnswerer, can_pin_provider
from .prompts import (
    SYSTEM_PROMPT,
    SYSTEM_PROMPT_NO_CONTEXT,
    build_context,
    build_plain_prompt,
    build_rag_prompt,
    context_entry,
)
from .query import parse_question
from .retrieval import (
    Hit,
    QueryImage,
    Retrieval,
    check_query,
    open_query_image,
    retrieve,
    retrieve_by_image,
)

__all__ = ["PHOTO_QUESTION", "ImageRAG", "RAGResult", "build_metadata_context"]

#: The question asked about a photo sent without words.
PHOTO_QUESTION = "Do you have something like this?"


def build_metadata_context(hits: Sequence[Hit]) -> str:
    """The ranked product lines, fenced as data, that go into the prompt.

    Introduced in 04_multimodal_generation.
    """
    return build_context(context_entry(h.rank, h.product, h.similarity) for h in hits)


@dataclass(frozen=True)
class RAGResult:
    """One answer with everything needed to judge it: the hits, the prompt, who answered."""

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
        }


class ImageRAG:
    """Retrieve with any :class:`~course_utils.index.VectorIndex` and a CLIP embedder, answer with any LLM.

    ``llm`` needs ``generate(prompt, system_prompt=None)`` and
    ``generate_multimodal(prompt, images, system_prompt=None)`` (see :class:`~course_utils.llm.LLM`);
    the course's cascade and an ``llm_cascade`` cascade both fit. Without one, the offline
    answerer is used.
    Introduced in 05_image_rag_pipeline.
    """

    def __init__(self, index: VectorIndex, embedder: Any, llm: Any = None, plan: str = "hybrid") -> None:
        self.index = index
        self.embedder = embedder
        self.llm = llm if llm is not None else OfflineAnswerer()
        self.plan = plan

    def __repr__(self) -> str:
        return f"ImageRAG({self.index!r}, llm={type(self.llm).__name__})"

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
        image: QueryImage | None = None,
        image_name: str | None = None,
    ) -> RAGResult:
        """Retrieve the top-k products and ask the LLM with their images and metadata.

        With ``image`` (a path, the file's bytes or a PIL image: the shopper's photo) retrieval
        starts from the photo, joined by the question's words when they name a colour, shape,
        pattern, category or price; the LLM receives the photo first, labelled as the shopper's,
        then the retrieved catalog images. An empty question asks :data:`PHOTO_QUESTION`.
        ``image_name`` names the photo in the result (an upload's file name).
        """
        question = self._question(question, image)
        found = self.retrieve(question, k=k, plan=plan, image=image, image_name=image_name)
        photo = image is not None
        context = build_metadata_context(found.hits)
        prompt = build_rag_prompt(question, context, len(found.hits), found.match, shopper_photo=photo)
        images = [_sendable(image)] if photo else []
        images += [h.path for h in found.hits]
        response = self.llm.generate_multimodal(prompt, images, system_prompt=SYSTEM_PROMPT)
        return RAGResult(
            question=question,
            answer=response.text,
            provider=response.provider,
            model=response.model,
            prompt=prompt,
            used_rag=True,
            hits=found.hits,
            plan=found.plan,
            match=found.match,
            grounding=check_grounding(response.text, found.hits, self.index.products),
            note=found.note,
            attempts=tuple(getattr(response, "attempts", ()) or ()),
            query_image=found.query_image,
        )

    @staticmethod
    def _question(question: str, image: QueryImage | None) -> str:
        """The question, cleaned; a photo sent without words asks :data:`PHOTO_QUESTION`."""
        if image is not None and not (question or "").strip():
            return PHOTO_QUESTION
        return check_query(question)

    def answer_without_rag(
        self,
        question: str,
        provider: str | None = None,
        model: str | None = None,
        image: QueryImage | None = None,
        image_name: str | None = None,
    ) -> RAGResult:
        """Ask the same LLM the bare question, with no catalog context and no catalog images.

        With ``image``, the shopper's photo goes along (as it would to a chatbot without the
        catalog), so the comparison with :meth:`answer` differs only in the catalog.

        Pass ``provider`` and ``model`` (those of a RAG answer) to pin the call to what answered
        with RAG, so the comparison is one model against itself. A model is never pinned without
        its provider: an LLM that cannot pin a provider (an ``llm_cascade`` cascade applies
        ``model=`` to every provider it tries) is asked unpinned, and the result's ``note`` says
        that the two answers may come from different models.
        """
        question = self._question(question, image)
        label = (
            None if image is None else open_query_image(image, image_name)[1]
        )  # a bad photo fails before any request
        prompt = build_plain_prompt(question, shopper_photo=image is not None)
        kwargs: dict[str, str] = {}
        note = ""
        if provider and can_pin_provider(self.llm):
            kwargs = {"provider": provider, **({"model": model} if model else {})}
        elif provider:
            note = (
                f"{type(self.llm).__name__} cannot pin a provider, so this answer may come from another "
                f"model than {provider} ({model or 'its default model'})."
            )
        if image is None:
            response = self.llm.generate(prompt, system_prompt=SYSTEM_PROMPT_NO_CONTEXT, **kwargs)
        else:
            response = self.llm.generate_multimodal(
                prompt, [_sendable(image)], system_prompt=SYSTEM_PROMPT_NO_CONTEXT, **kwargs
            )
        return RAGResult(
            question=question,
            answer=response.text,
            provider=response.provider,
            model=response.model,
            prompt=prompt,
            used_rag=False,
            grounding=check_grounding(response.text, (), self.index.products),
            note=note,
            attempts=tuple(getattr(response, "attempts", ()) or ()),
            query_image=label,
        )

    def compare(
        self, question: str, k: int = 3, image: QueryImage | None = None, image_name: str | None = None
    ) -> tuple[RAGResult, RAGResult]:
        """The same question with and without retrieval, answered by the same provider where it can be pinned."""
        with_rag = self.answer(question, k=k, image=image, image_name=image_name)
        without = self.answer_without_rag(
            question, provider=with_rag.provider, model=with_rag.model, image=image, image_name=image_name
        )
        return with_rag, without


def _sendable(image: QueryImage) -> Any:
    """The shopper's photo as an LLM client takes it: a memoryview (an upload) becomes bytes."""
    return bytes(image) if isinstance(image, (bytearray, memoryview)) else image
