"""The Image-RAG pipeline: retrieve product images, then let a multimodal LLM answer from them.

Introduced in 05_image_rag_pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any

from .grounding import GroundingReport, check_grounding
from .images import UnusableImage, check_image_file
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
from .retrieval import Hit, Retrieval, check_query, retrieve

__all__ = ["ImageRAG", "RAGResult", "build_metadata_context"]


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
    images_sent: int = 0
    cached: bool = False  # the answer was stored by an earlier, identical call (no request made)

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "answer": self.answer,
            "provider": self.provider,
            "llm_model": self.model,
            "cached": self.cached,
            "used_rag": self.used_rag,
            "plan": self.plan,
            "match": self.match,
            "note": self.note,
            "results": [h.to_dict() for h in self.hits],
            "grounding": self.grounding.to_dict() if self.grounding else None,
            "images_sent": self.images_sent,
            "attempts": [asdict(a) for a in self.attempts if is_dataclass(a)],
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

    def retrieve(self, question: str, k: int = 3, plan: str | None = None) -> Retrieval:
        return retrieve(question, self.index, self.embedder, k=k, plan=plan or self.plan)

    def answer(self, question: str, k: int = 3, plan: str | None = None) -> RAGResult:
        """Retrieve the top-k products and ask the LLM with their images and metadata.

        Every hit goes into the prompt as a catalog entry; its image goes along when the file is
        still there and the LLM takes that many images (``max_images``). The note says what was left out.
        """
        found = self.retrieve(question, k=k, plan=plan)
        sent, image_note = self._images_to_send(found.hits)
        ranks = [h.rank for h in sent] if len(sent) < len(found.hits) else None
        prompt = build_rag_prompt(
            found.query, build_metadata_context(found.hits), len(sent), found.match, image_ranks=ranks
        )
        response = self.llm.generate_multimodal(prompt, [h.path for h in sent], system_prompt=SYSTEM_PROMPT)
        return RAGResult(
            question=found.query,
            answer=response.text,
            provider=response.provider,
            model=response.model,
            prompt=prompt,
            used_rag=True,
            hits=found.hits,
            plan=found.plan,
            match=found.match,
            grounding=check_grounding(response.text, found.hits, self.index.products),
            note=" ".join(filter(None, (found.note, image_note))),
            attempts=tuple(getattr(response, "attempts", ()) or ()),
            images_sent=len(sent),
            cached=getattr(response, "cached", False) is True,
        )

    def _images_to_send(self, hits: Sequence[Hit]) -> tuple[list[Hit], str]:
        """The hits whose images can go to the LLM, and a note on those that cannot.

        An image file may have gone, or become something that is not a file, since indexing: it
        is left out (checked without opening it, so a FIFO cannot block) and the answer goes on.
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
        if isinstance(limit, int) and len(sent) > limit:
            notes.append(f"The LLM takes at most {limit} images per request: the first {limit} were sent.")
            sent = sent[:limit]
        return sent, " ".join(notes)

    def answer_without_rag(self, question: str, provider: str | None = None, model: str | None = None) -> RAGResult:
        """Ask the same LLM the bare question, with no catalog context and no images.

        Pass ``provider`` and ``model`` (those of a RAG answer) to pin the call to what answered
        with RAG, so the comparison is one model against itself. A model is never pinned without
        its provider: an LLM that cannot pin a provider (an ``llm_cascade`` cascade applies
        ``model=`` to every provider it tries) is asked unpinned, and the result's ``note`` says
        that the two answers may come from different models.
        """
        question = check_query(question)
        prompt = build_plain_prompt(question)
        kwargs: dict[str, str] = {}
        note = ""
        if provider and can_pin_provider(self.llm):
            kwargs = {"provider": provider, **({"model": model} if model else {})}
        elif provider:
            note = (
                f"{type(self.llm).__name__} cannot pin a provider, so this answer may come from another "
                f"model than {provider} ({model or 'its default model'})."
            )
        response = self.llm.generate(prompt, system_prompt=SYSTEM_PROMPT_NO_CONTEXT, **kwargs)
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
            cached=getattr(response, "cached", False) is True,
        )

    def compare(self, question: str, k: int = 3) -> tuple[RAGResult, RAGResult]:
        """The same question with and without retrieval, answered by the same provider where it can be pinned."""
        with_rag = self.answer(question, k=k)
        return with_rag, self.answer_without_rag(question, provider=with_rag.provider, model=with_rag.model)
