"""The panels that answer: one provider (04), with and without RAG, from words or a photo (05),
plain against hybrid retrieval (08), and the evidence conditions side by side (10).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets

from ..ablation import ablation_questions, score_answer
from ..errors import CourseError
from ..llm import can_pin_provider
from ..prompts import CONDITIONS, METADATA_VIEWS
from ..viz import CONDITION_COLORS, STRONG_COLOR, WEAK_COLOR
from .base import AUTO, Panel, PhotoPanel, _info, _layout, _query_text, _result_card, _warning

__all__ = [
    "AblationPanel",
    "AskPanel",
    "GenerationPanel",
    "PlanComparisonPanel",
    "ablation_panel",
    "ask_panel",
    "generation_panel",
    "plan_comparison_panel",
    "provider_options",
]


# --------------------------------------------------------------------------- 04: generation panel


class _PinnedLLM:
    """The same LLM, asked to use one provider: lets a panel pin the cascade without touching it."""

    def __init__(self, llm: Any, provider: str) -> None:
        self.llm, self.provider = llm, provider
        self.max_images = getattr(llm, "max_images", None)  # so ImageRAG sends no more than the LLM takes

    def generate(self, prompt: str, system_prompt: str | None = None, **kwargs: Any) -> Any:
        return self.llm.generate(prompt, system_prompt=system_prompt, **{**kwargs, "provider": self.provider})

    def generate_multimodal(self, prompt: str, images: Sequence[Any], system_prompt: str | None = None, **kwargs):
        return self.llm.generate_multimodal(
            prompt, images, system_prompt=system_prompt, **{**kwargs, "provider": self.provider}
        )


def provider_options(llm: Any, providers: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """Dropdown options ``(label, value)``: ``auto`` first, then the providers to pin.

    ``providers`` if given, else the names from ``llm.list_providers()`` (labelled with their
    state), else only ``auto``.
    """
    options = [("auto (first provider that answers)", AUTO)]
    if providers is not None:
        return options + [(name, name) for name in providers if name != AUTO]
    lister = getattr(llm, "list_providers", None)
    if not callable(lister):
        return options
    for info in lister():
        name = getattr(info, "name", None) or str(info)
        state = getattr(info, "state", "")
        label = getattr(info, "display_name", name) + (f" ({state})" if state else "")
        options.append((label, name))
    return options


def _answer_box(result: Any, title: str) -> str:
    answer = html.escape(result.answer).replace("\n", "<br>")
    cached = " · <i>cached answer (no request made)</i>" if getattr(result, "cached", False) is True else ""
    return (
        f"<div style='border:1px solid #BDC3C7;border-radius:6px;padding:8px;margin:4px'>"
        f"<b>{html.escape(title)}</b><br>"
        f"<small>provider: <code>{html.escape(str(result.provider))}</code> · "
        f"model: <code>{html.escape(str(result.model))}</code>{cached}</small>"
        f"<p>{answer}</p></div>"
    )


class GenerationPanel(Panel):
    """Question + provider → the grounded answer."""

    def __init__(self, rag: Any, providers: Sequence[str] | None = None, k: int = 3) -> None:
        super().__init__()
        self.rag, self.k = rag, k
        self.query = widgets.Text(value="", placeholder="e.g. What red products do you have?", description="Question")
        self.query.layout.width = "420px"
        options = provider_options(rag.llm, providers)
        self.provider = widgets.Dropdown(options=options, value=AUTO, description="Provider")
        self.button = widgets.Button(description="Answer", button_style="primary")
        self.answer = widgets.HTML(value="")
        self._connect(self.button)
        self.widget = widgets.VBox([widgets.HBox([self.query, self.provider, self.button]), self.message, self.answer])

    def _rag(self) -> Any:
        """``self.rag``, or a copy whose LLM is pinned to the chosen provider."""
        choice = self.provider.value
        if choice == AUTO:
            return self.rag
        if not can_pin_provider(self.rag.llm):
            raise CourseError(f"This LLM ({type(self.rag.llm).__name__}) cannot be pinned to a provider; use 'auto'.")
        return type(self.rag)(self.rag.index, self.rag.embedder, _PinnedLLM(self.rag.llm, choice), self.rag.plan)

    def _run(self):
        query = _query_text(self.query)
        if query is None:
            self.message.value = _info("Type a question first, e.g. 'What red products do you have?'.")
            return None
        result = self._rag().answer(query, k=self.k)
        self.answer.value = _answer_box(result, f"Answer with RAG (top {len(result.hits)} images)")
        self.last = result
        return result


def generation_panel(rag: Any, providers: Sequence[str] | None = None, k: int = 3) -> GenerationPanel:
    """A question box and a provider dropdown (``auto`` + the cascade's providers) → the answer.

    ``.last`` is the :class:`~course_utils.rag.RAGResult`. Introduced in 04_multimodal_generation.
    """
    return GenerationPanel(rag, providers=providers, k=k)


# --------------------------------------------------------------------------- 05: ask the catalog


class AskPanel(PhotoPanel):
    """Question (and a photo) + k → retrieved images and the answers with and without RAG side by side."""

    def __init__(self, rag: Any, k: int = 3) -> None:
        super().__init__()
        n = len(rag.index)
        if n == 0:
            raise CourseError("The index is empty: build it from at least one image.")
        self.rag = rag
        self.query = widgets.Text(
            value="", placeholder="e.g. What is the cheapest red product?", description="Question"
        )
        self.query.layout.width = "420px"
        self.k = widgets.IntSlider(value=max(1, min(k, n)), min=1, max=n, description="k")
        self.metadata = widgets.Dropdown(
            options=[("full rows", "full"), ("shop rows (no look)", "shop")], value=rag.metadata, description="Rows"
        )
        self.button = widgets.Button(description="Ask", button_style="primary")
        self.results = widgets.HBox(layout=_layout(flex_flow="row wrap"))
        self.with_rag = widgets.HTML(value="", layout=_layout(width="50%"))
        self.without_rag = widgets.HTML(value="", layout=_layout(width="50%"))
        self._make_photo()
        self._connect(self.button)
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.query, self.k, self.metadata, self.button]),
                widgets.HBox([self.photo.upload, self.photo.box]),
                self.message,
                self.results,
                widgets.HBox([self.with_rag, self.without_rag]),
            ]
        )
        # stable CSS hooks for the browser tests (tests/browser)
        self.widget.add_class("course-ask-panel")
        self.results.add_class("course-results")
        self.with_rag.add_class("course-answer-with-rag")
        self.without_rag.add_class("course-answer-without-rag")

    def _run(self):
        query = _query_text(self.query)
        photo = self.photo.image
        if query is None and photo is None:
            self.message.value = _info(
                "Type a question first, e.g. 'What is the cheapest red product?', or upload a photo."
            )
            return None
        with_rag, without_rag = self.rag.compare(
            query or "", k=int(self.k.value), metadata=self.metadata.value, image=photo, image_name=self.photo.name
        )
        self.results.children = [self._card(hit) for hit in with_rag.hits]
        if photo is None:
            seen, blind = f"{with_rag.images_sent} catalog images", "Without RAG (no catalog)"
        else:  # the photo is one of the images sent
            seen, blind = (
                f"your photo and {with_rag.images_sent - 1} catalog images",
                "Without RAG (sees your photo, no catalog)",
            )
        self.with_rag.value = _answer_box(with_rag, f"With RAG (sees {seen})")
        self.without_rag.value = _answer_box(without_rag, blind)
        if not with_rag.match:
            self.message.value = _warning("No retrieved image stands out: the catalog may not have what you asked for.")
        self.last = (with_rag, without_rag)
        return self.last


def ask_panel(rag: Any, k: int = 3) -> AskPanel:
    """The full "ask the catalog" panel: retrieved images plus answers with and without RAG.

    A photo may come with the question (or stand for it: "Do you have something like this?"):
    upload one, or press "Use as query" on a retrieved image.
    ``.last`` is ``(with_rag, without_rag)``, two :class:`~course_utils.rag.RAGResult`.
    Introduced in 05_image_rag_pipeline.
    """
    return AskPanel(rag, k=k)


# --------------------------------------------------------------------------- 08: plain vs hybrid


def _grounding_line(result: Any) -> str:
    report = result.grounding
    if report is None or report.ok:
        return _info("grounding check: every product and price named was retrieved")
    problems = [*report.unknown_products, *report.not_retrieved]
    problems += [f"{w['product']} at ${w['said']:.2f}" for w in report.wrong_prices]
    return _warning("grounding check flags: " + ", ".join(problems))


class PlanComparisonPanel(Panel):
    """One question, answered with plain CLIP top-k and with the hybrid planner side by side."""

    def __init__(self, rag: Any, k: int = 3) -> None:
        super().__init__()
        self.rag, self.k = rag, k
        self.query = widgets.Text(
            value="", placeholder="e.g. What is the most expensive product?", description="Question"
        )
        self.query.layout.width = "420px"
        self.button = widgets.Button(description="Compare", button_style="primary")
        self.columns = {plan: widgets.VBox(layout=_layout(width="50%")) for plan in ("none", "hybrid")}
        self._connect(self.button)
        self.widget = widgets.VBox(
            [widgets.HBox([self.query, self.button]), self.message, widgets.HBox(list(self.columns.values()))]
        )

    def _run(self):
        query = _query_text(self.query)
        if query is None:
            self.message.value = _info("Type a question first, e.g. 'What is the most expensive product?'.")
            return None
        results = {plan: self.rag.answer(query, k=self.k, plan=plan) for plan in self.columns}
        titles = {"none": "Plain CLIP top-k", "hybrid": "Hybrid planner"}
        for plan, result in results.items():
            self.columns[plan].children = [
                widgets.HTML(value=f"<b>{titles[plan]}</b> <small>({html.escape(result.plan)})</small>"),
                widgets.HBox([_result_card(hit) for hit in result.hits], layout=_layout(flex_flow="row wrap")),
                widgets.HTML(value=_answer_box(result, "Answer")),
                widgets.HTML(value=_grounding_line(result)),
            ]
        self.last = (results["none"], results["hybrid"])
        return self.last


def plan_comparison_panel(rag: Any, k: int = 3) -> PlanComparisonPanel:
    """A question box → plain top-k and hybrid retrieval, their answers and grounding, side by side.

    ``.last`` is ``(plain, hybrid)``, two :class:`~course_utils.rag.RAGResult`.
    Introduced in 08_evaluating_image_rag.
    """
    return PlanComparisonPanel(rag, k=k)


# --------------------------------------------------------------------------- 10: what the pictures add

_SHOWN_BY_DEFAULT = ("metadata", "images", "both")


def _sent_html(result: Any) -> str:
    sent = result.sent
    if sent is None:
        return ""
    if not sent.images:
        tokens = ""
    elif sent.image_tokens is None:
        tokens = " · image tokens not reported"
    else:
        tokens = f" · {sent.image_tokens} image tokens ({sent.image_tokens_source})"
    return (
        f"<small>sent: {sent.images} image(s), {sent.prompt_chars} characters, {result.metadata} rows{tokens}</small>"
    )


def _score_html(score: Mapping[str, Any] | None) -> str:
    if score is None:
        return "<small>not scored: a question of your own has no known answer</small>"
    mark = (
        f"<b style='color:{STRONG_COLOR}'>✓ exact</b>"
        if score["exact"]
        else f"<b style='color:{WEAK_COLOR}'>✗ not exact</b>"
    )
    invented = f" · invents {html.escape(', '.join(score['invented']))}" if score["invented"] else ""
    return f"{mark} <small>precision {score['precision']:.2f} · recall {score['recall']:.2f}{invented}</small>"


class AblationPanel(Panel):
    """One question under the evidence conditions you switch on, side by side: each answer, what
    was sent and its score. Introduced in 10_what_the_pictures_add."""

    def __init__(self, rag: Any, questions: Sequence[Mapping[str, Any]] | None = None, k: int = 3) -> None:
        super().__init__()
        self.rag, self.k = rag, k
        self.questions = [dict(q) for q in (questions or ablation_questions(rag.index.products))]
        if not self.questions:
            raise CourseError("Give at least one question with its known answer.")
        options = [(f"[{q.get('type', 'other')}] {q['query']}", i) for i, q in enumerate(self.questions)]
        self.question = widgets.Dropdown(options=options, value=0, description="Question")
        self.question.layout.width = "460px"
        self.custom = widgets.Text(value="", placeholder="or type your own (not scored)", description="Own")
        self.custom.layout.width = "460px"
        self.metadata = widgets.ToggleButtons(options=list(METADATA_VIEWS), value=rag.metadata, description="Rows")
        self.toggles = {
            c: widgets.ToggleButton(value=c in _SHOWN_BY_DEFAULT, description=c, layout=_layout(width="96px"))
            for c in CONDITIONS
        }
        self.button = widgets.Button(description="Ask", button_style="primary")
        self.columns = widgets.HBox(layout=_layout(flex_flow="row wrap", align_items="flex-start"))
        self._connect(self.button)
        self.widget = widgets.VBox(
            [
                self.question,
                self.custom,
                widgets.HBox([self.metadata]),
                widgets.HBox([widgets.Label("Conditions:"), *self.toggles.values()]),
                self.button,
                self.message,
                self.columns,
            ]
        )
        self.widget.add_class("course-ablation-panel")

    def selected(self) -> list[str]:
        """The conditions switched on, in the course's order."""
        return [c for c in CONDITIONS if self.toggles[c].value]

    def _run(self):
        conditions = self.selected()
        if not conditions:
            self.message.value = _info("Switch on at least one condition, e.g. metadata and images.")
            return None
        own = _query_text(self.custom)
        asked = {"query": own, "relevant": None} if own else self.questions[int(self.question.value)]
        pins: dict[str, str] = {}
        results: dict[str, tuple[Any, dict | None]] = {}
        for condition in conditions:
            result = self.rag.ask(asked["query"], condition, k=self.k, metadata=self.metadata.value, **pins)
            if not pins and can_pin_provider(self.rag.llm):  # one model answers every condition
                pins = {"provider": result.provider, "model": result.model}
            relevant = asked["relevant"]
            score = None if relevant is None else score_answer(result.answer, relevant, self.rag.index.products)
            results[condition] = (result, score)
        self.columns.children = [self._column(c, *results[c]) for c in conditions]
        if asked["relevant"] is not None:
            right = ", ".join(asked["relevant"]) or "none: the catalog does not have it"
            self.message.value = _info(f"Known answer: {right}.")
        self.last = results
        return results

    def _column(self, condition: str, result: Any, score: dict | None) -> widgets.HTML:
        answer = html.escape(result.answer).replace("\n", "<br>")
        color = CONDITION_COLORS.get(condition, "#BDC3C7")
        return widgets.HTML(
            value=(
                f"<div style='border-top:4px solid {color};padding:6px;margin:4px;width:260px'>"
                f"<b>{html.escape(condition)}</b><br>{_sent_html(result)}<br>{_score_html(score)}"
                f"<p style='font-size:90%'>{answer}</p>"
                f"<small>{html.escape(str(result.provider))} · {html.escape(str(result.model))}</small></div>"
            )
        )


def ablation_panel(rag: Any, questions: Sequence[Mapping[str, Any]] | None = None, k: int = 3) -> AblationPanel:
    """Pick a question with a known answer (or type one), switch conditions on and off, and see the
    answers side by side with what each condition sent and its score.

    ``.last`` maps each condition to ``(RAGResult, score)``; the score is None for a question of
    your own. Introduced in 10_what_the_pictures_add.
    """
    return AblationPanel(rag, questions=questions, k=k)
