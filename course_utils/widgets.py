"""Interactive panels for the notebooks, built from plain ipywidgets (7.7 on Colab, or 8.x).

Each function returns a small panel object: ``.widget`` is what you ``display``, the controls are
attributes (``.query``, ``.k``, ``.button``, ...), ``.message`` shows friendly messages and
``.last`` holds the last result. ``.run()`` does what the button does, so a notebook's self-check
cell (and the tests) can drive a panel without a browser. Introduced in 01_synthetic_catalog.
"""

from __future__ import annotations

import html
import io
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from .ablation import ablation_questions, score_answer
from .catalog import COLOR_HEX, PATTERNS, SHAPES, Product, product_from_dict, render_product
from .errors import CourseError
from .images import ImageLike, open_image
from .index import VectorIndex
from .llm import can_pin_provider
from .prompts import CONDITIONS, METADATA_VIEWS
from .retrieval import TEXT_WEIGHT, QueryImage, check_query, open_query_image, retrieve, retrieve_by_image
from .viz import CONDITION_COLORS, STRONG_COLOR, WEAK_COLOR, similarity_bars

__all__ = [
    "AUTO",
    "THUMBNAIL",
    "ablation_panel",
    "AblationPanel",
    "ask_panel",
    "AskPanel",
    "backend_explorer",
    "BackendExplorer",
    "figure_png",
    "generation_panel",
    "GenerationPanel",
    "Panel",
    "PhotoQuery",
    "plan_comparison_panel",
    "PlanComparisonPanel",
    "png_bytes",
    "product_designer",
    "ProductDesigner",
    "provider_options",
    "retrieval_explorer",
    "RetrievalExplorer",
    "similarity_explorer",
    "SimilarityExplorer",
    "uploaded_files",
]

THUMBNAIL = 180  # pixels: result cards stay small enough for a row of five
AUTO = "auto"


def png_bytes(image: ImageLike, max_side: int | None = None) -> bytes:
    """PNG bytes of an image (path or PIL), shrunk to ``max_side`` if given, for ``widgets.Image``."""
    picture = open_image(image).copy()
    if max_side:
        picture.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def figure_png(fig) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it (a panel redraws often)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _info(text: str) -> str:
    return f"<span style='color:#34495E'>{html.escape(text)}</span>"


def _warning(text: str) -> str:
    return f"<span style='color:{WEAK_COLOR}'>⚠ {html.escape(text)}</span>"


def _layout(**kwargs: Any) -> widgets.Layout:
    return widgets.Layout(**kwargs)


class Panel:
    """What every panel shares: the container, a message line, the last result and ``run()``.

    A :class:`~course_utils.errors.CourseError` (a problem the student can fix) is shown in
    ``.message``; any other exception is a bug, shown there too and then raised.
    """

    title = ""

    def __init__(self) -> None:
        self.message = widgets.HTML(value="")
        self.last: Any = None
        self.widget: widgets.Box = widgets.VBox()

    def _ipython_display_(self) -> None:  # so a panel on the last line of a cell shows itself
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: display(panel.widget) to show it>"

    def run(self, _button: Any = None) -> Any:
        """Do what the button does; returns (and stores in ``.last``) the result, or None."""
        self.message.value = ""
        try:
            result = self._run()
        except CourseError as exc:
            self.message.value = _warning(str(exc))
            return None
        except Exception as exc:
            self.message.value = _warning(f"Unexpected error (a bug, please report it): {type(exc).__name__}: {exc}")
            raise
        return result

    def _run(self) -> Any:
        raise NotImplementedError

    def _connect(self, button: widgets.Button) -> None:
        button.on_click(self.run)


def _query_text(box: widgets.Text) -> str | None:
    """The query, cleaned; None when it is empty (the caller shows a friendly message)."""
    try:
        return check_query(box.value)
    except CourseError:
        return None


def _result_card(hit, on_use: Callable[[str], Any] | None = None) -> widgets.VBox:
    """One retrieved image with its rank, name and similarity; weak hits get a red frame.

    With ``on_use``, a "Use as query" button under the card calls ``on_use(hit.path)``: a
    learner can walk the catalog from picture to picture.
    """
    color = WEAK_COLOR if hit.weak else STRONG_COLOR
    weak = f" <span style='color:{WEAK_COLOR}'>(weak)</span>" if hit.weak else ""
    exact = " <i>(your picture itself)</i>" if getattr(hit, "exact", False) else ""
    caption = f"<b>#{hit.rank} {html.escape(hit.product.name)}</b><br>similarity {hit.similarity:.3f}{weak}{exact}"
    image = widgets.Image(value=png_bytes(hit.path, THUMBNAIL), format="png", width=THUMBNAIL)
    children: list[widgets.Widget] = [image, widgets.HTML(value=caption)]
    if on_use is not None:
        use = widgets.Button(
            description="Use as query", tooltip="search with this picture", layout=_layout(width="auto")
        )
        use.on_click(lambda _button, path=hit.path: on_use(path))
        children.append(use)
    return widgets.VBox(
        children,
        layout=_layout(border=f"2px solid {color}", padding="4px", margin="4px", align_items="center"),
    )


# --------------------------------------------------------------------------- a photo as the query


def uploaded_files(value: Any) -> list[tuple[str, bytes]]:
    """The files in a ``FileUpload``'s value as ``(name, bytes)`` pairs, whichever ipywidgets made it.

    ipywidgets 8 gives a tuple of dicts with ``"name"`` and ``"content"`` (a memoryview);
    ipywidgets 7.7 (Colab's) gives a dict from file name to ``{"metadata": ..., "content": bytes}``.
    """
    if not value:
        return []
    if isinstance(value, Mapping):  # ipywidgets 7
        return [(str(name), bytes(item["content"])) for name, item in value.items()]
    return [(str(item["name"]), bytes(item["content"])) for item in value]


class PhotoQuery:
    """An upload button, the query photo on show (with its name) and a button that drops it.

    ``.image`` is the photo (bytes, a path or a PIL image) or None; ``.box`` shows it and stays
    hidden without one. ``on_pick(image, name)`` is called for every uploaded file.
    """

    def __init__(self, on_pick: Callable[[QueryImage, str], Any], extra: Sequence[widgets.Widget] = ()) -> None:
        self.on_pick = on_pick
        self.image: QueryImage | None = None
        self.name: str | None = None
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="Photo")
        self.preview = widgets.Image(value=b"", format="png", width=THUMBNAIL // 2)
        self.caption = widgets.HTML(value="")
        self.clear_button = widgets.Button(description="Clear photo", layout=_layout(width="auto"))
        self.clear_button.on_click(lambda _button: self.clear())
        self.box = widgets.HBox(
            [self.preview, widgets.VBox([self.caption, *extra, self.clear_button])],
            layout=_layout(display="none", align_items="center"),
        )
        self.box.add_class("course-query-image")  # a stable CSS hook for the browser tests
        self.upload.observe(self._on_upload, names="value")

    def _on_upload(self, change: Mapping[str, Any]) -> None:
        files = uploaded_files(change["new"])
        if not files:
            return
        # empty the control (a dict in ipywidgets 7, a tuple in 8), so that choosing the same
        # file again is a change that reaches us
        self.upload.set_trait("value", type(self.upload.value)())
        name, data = files[-1]
        self.on_pick(data, name)

    def set(self, image: QueryImage, name: str | None = None) -> None:
        """Show ``image`` as the query; a file that is not a usable picture is a CourseError saying why."""
        picture, label = open_query_image(image, name)
        self.preview.value = png_bytes(picture, THUMBNAIL)
        self.image, self.name = image, name
        self.caption.value = f"<b>Query picture</b><br><small>{html.escape(Path(label).name)}</small>"
        self.box.layout.display = None

    def clear(self) -> None:
        self.image, self.name = None, None
        self.preview.value, self.caption.value = b"", ""
        self.box.layout.display = "none"


class PhotoPanel(Panel):
    """A panel that also takes a photo as the query: an upload, and "Use as query" on its result cards."""

    def _make_photo(self, extra: Sequence[widgets.Widget] = ()) -> PhotoQuery:
        self.photo = PhotoQuery(self.use_image, extra)
        return self.photo

    def use_image(self, image: QueryImage, name: str | None = None) -> Any:
        """Make ``image`` (a path, bytes or PIL image) the query photo and run: what an upload and a card's button do."""
        self.message.value = ""
        try:
            self.photo.set(image, name)
        except CourseError as exc:
            self.message.value = _warning(str(exc))
            return None
        return self.run()

    def _card(self, hit) -> widgets.VBox:
        return _result_card(hit, on_use=self.use_image)


# --------------------------------------------------------------------------- 01: product designer


class ProductDesigner(Panel):
    """Design a product with dropdowns and see it rendered."""

    def __init__(self) -> None:
        super().__init__()
        style = {"description_width": "70px"}
        self.name = widgets.Text(value="My Product", description="Name", style=style)
        self.shape = widgets.Dropdown(options=list(SHAPES), value="hexagon", description="Shape", style=style)
        self.color = widgets.Dropdown(options=list(COLOR_HEX), value="green", description="Colour", style=style)
        self.pattern = widgets.Dropdown(options=list(PATTERNS), value="checkered", description="Pattern", style=style)
        self.price = widgets.BoundedFloatText(
            value=9.99, min=0, max=100_000, step=0.5, description="Price $", style=style
        )
        self.category = widgets.Text(value="gadgets", description="Category", style=style)
        self.button = widgets.Button(description="Draw product", button_style="primary")
        self.image = widgets.Image(value=b"", format="png", width=256)
        self.caption = widgets.HTML(value="")
        self._connect(self.button)
        # redraw whenever a control changes: rendering takes milliseconds
        for control in (self.name, self.shape, self.color, self.pattern, self.price, self.category):
            control.observe(lambda _change: self.run(), names="value")
        controls = widgets.VBox(
            [self.name, self.shape, self.color, self.pattern, self.price, self.category, self.button, self.message]
        )
        self.widget = widgets.HBox([controls, widgets.VBox([self.image, self.caption])])
        self.run()

    def _run(self) -> Product:
        product = product_from_dict(
            {
                "name": self.name.value,
                "shape": self.shape.value,
                "color": COLOR_HEX[self.color.value],
                "color_name": self.color.value,
                "pattern": self.pattern.value,
                "price": float(self.price.value),
                "category": self.category.value,
            }
        )
        self.image.value = png_bytes(render_product(product))
        self.caption.value = f"<code>{html.escape(product.metadata_line())}</code>"
        self.last = product
        return product


def product_designer() -> ProductDesigner:
    """A panel to design a product (shape, colour, pattern, price, name) and see it rendered.

    ``.last`` is the :class:`~course_utils.catalog.Product`. Introduced in 01_synthetic_catalog.
    """
    return ProductDesigner()


# --------------------------------------------------------------------------- 02: similarity explorer


class SimilarityExplorer(Panel):
    """Type a text, see its similarity to every catalog image."""

    def __init__(self, embedder: Any, index: VectorIndex) -> None:
        super().__init__()
        self.embedder, self.index = embedder, index
        self.query = widgets.Text(value="", placeholder="e.g. a red circle", description="Text")
        self.button = widgets.Button(description="Compare", button_style="primary")
        # hidden until there is a chart: an empty image shows as a broken icon in some front ends
        self.plot = widgets.Image(value=b"", format="png", layout=_layout(display="none"))
        self._connect(self.button)
        self.widget = widgets.VBox([widgets.HBox([self.query, self.button]), self.message, self.plot])

    def _run(self):
        query = _query_text(self.query)
        if query is None:
            self.message.value = _info("Type a short description first, e.g. 'a red circle'.")
            return None
        self.index.check_model(self.embedder.model_id)
        scores = self.index.similarities(self.embedder.embed_texts([query])[0])
        self.plot.value = figure_png(similarity_bars(query, self.index.products, scores))
        self.plot.layout.display = None
        best = int(scores.argmax())
        self.message.value = _info(f"Most similar image: {self.index.products[best].name} ({scores[best]:.3f}).")
        self.last = scores
        return scores


def similarity_explorer(embedder: Any, index: VectorIndex) -> SimilarityExplorer:
    """A text box and a bar chart of the text's cosine similarity to every image in ``index``.

    ``.last`` is the array of scores in index order. Introduced in 02_clip_embeddings.
    """
    return SimilarityExplorer(embedder, index)


# --------------------------------------------------------------------------- 03: retrieval explorer


class RetrievalExplorer(PhotoPanel):
    """Query (words, a photo, or both) + k slider → the top-k images with scores."""

    def __init__(self, embedder: Any, index: VectorIndex, k: int = 3, plan: str = "none") -> None:
        super().__init__()
        if len(index) == 0:
            raise CourseError("The index is empty: build it from at least one image.")
        self.embedder, self.index, self.plan = embedder, index, plan
        self.query = widgets.Text(value="", placeholder="e.g. red circular product", description="Query")
        self.k = widgets.IntSlider(value=max(1, min(k, len(index))), min=1, max=len(index), description="k")
        self.button = widgets.Button(description="Search", button_style="primary")
        self.results = widgets.HBox(layout=_layout(flex_flow="row wrap"))
        # how much the words count next to a photo: 0 the photo alone, 1 the words alone
        self.weight = widgets.FloatSlider(
            value=TEXT_WEIGHT,
            min=0.0,
            max=1.0,
            step=0.05,
            description="words weight",
            style={"description_width": "90px"},
        )
        self._make_photo(extra=[self.weight])
        self._connect(self.button)
        # moving k (or the weight, with a photo and words) re-runs the last search
        self.k.observe(self._again, names="value")
        self.weight.observe(lambda change: self._again(change) if self.query.value.strip() else None, names="value")
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.query, self.k, self.button]),
                widgets.HBox([self.photo.upload, self.photo.box]),
                self.message,
                self.results,
            ]
        )
        # stable CSS hooks for the browser tests (tests/browser)
        self.widget.add_class("course-retrieval-explorer")
        self.results.add_class("course-results")

    def _again(self, _change: Any) -> None:
        if self.last is not None and (self.query.value.strip() or self.photo.image is not None):
            self.run()

    def _run(self):
        query = _query_text(self.query)
        if self.photo.image is not None:
            found = retrieve_by_image(
                self.photo.image,
                self.index,
                self.embedder,
                k=int(self.k.value),
                text=query,
                weight=float(self.weight.value),
                plan=self.plan,
                image_name=self.photo.name,
            )
        elif query is None:
            self.message.value = _info(
                "Type what you are looking for first, e.g. 'red circular product', or upload a photo."
            )
            return None
        else:
            found = retrieve(query, self.index, self.embedder, k=int(self.k.value), plan=self.plan)
        self.results.children = [self._card(hit) for hit in found]
        if not found.match:
            self.message.value = _warning(
                "No image stands out for this query: the catalog may not have it. These are only the closest."
            )
        elif found.note:
            self.message.value = _info(found.note)
        self.last = found
        return found


def retrieval_explorer(embedder: Any, index: VectorIndex, k: int = 3, plan: str = "none") -> RetrievalExplorer:
    """A query box, a k slider (1..len(index)) and a button; shows the top-k images with scores.

    A photo can be the query too: upload one (``.photo.upload``), or press "Use as query" on a
    result; words typed with a photo change it ("blue"), weighted by ``.weight``.
    ``.last`` is the :class:`~course_utils.retrieval.Retrieval`. ``plan="none"`` is plain CLIP
    top-k as taught in 03; ``"hybrid"`` adds the price/category rules of 08.
    Introduced in 03_image_retrieval.
    """
    return RetrievalExplorer(embedder, index, k=k, plan=plan)


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
        seen = "your photo and " if photo is not None else ""
        self.with_rag.value = _answer_box(
            with_rag, f"With RAG (sees {seen}{with_rag.images_sent - bool(seen)} catalog images)"
        )
        blind = "Without RAG (sees your photo, no catalog)" if photo is not None else "Without RAG (no catalog)"
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


# --------------------------------------------------------------------------- 09: numpy or chroma


class BackendExplorer:
    """A query box, a k slider and a backend dropdown: the same search on NumPy or on Chroma.

    ``backends`` maps a label to an index (anything with the index interface). ``.run()`` does
    what the button does and returns the :class:`~course_utils.retrieval.Retrieval`; ``.last``
    keeps it and ``.seconds`` how long the search took.
    """

    def __init__(self, embedder: Any, backends: Mapping[str, VectorIndex], k: int = 3, plan: str = "hybrid") -> None:
        if not backends:
            raise CourseError("Give at least one backend, e.g. {'numpy': index}.")
        sizes = {len(index) for index in backends.values()}
        if len(sizes) != 1:
            raise CourseError("The backends hold different numbers of images: index the same catalog into each.")
        self.backends = dict(backends)
        self.explorer = retrieval_explorer(embedder, next(iter(self.backends.values())), k=k, plan=plan)
        self.query, self.k, self.button = self.explorer.query, self.explorer.k, self.explorer.button
        self.message, self.results = self.explorer.message, self.explorer.results
        self.backend = widgets.Dropdown(options=list(self.backends), description="Backend")
        self.timing = widgets.HTML(value="")
        self.last = None
        self.seconds: float | None = None
        # the button and the dropdown go through run(), so the timing line always matches the grid
        self.button.on_click(self.explorer.run, remove=True)
        self.button.on_click(self.run)
        self.backend.observe(lambda _change: self.run() if self.query.value.strip() else None, names="value")
        self.widget = widgets.VBox([self.backend, self.explorer.widget, self.timing])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def run(self, _button: Any = None) -> Any:
        self.explorer.index = self.backends[self.backend.value]
        start = time.perf_counter()
        found = self.explorer.run()
        self.seconds = time.perf_counter() - start
        self.last = found
        self.timing.value = (
            "" if found is None else f"<small>{html.escape(self.backend.value)}: {self.seconds * 1000:.0f} ms</small>"
        )
        return found


def backend_explorer(
    embedder: Any, backends: Mapping[str, VectorIndex], k: int = 3, plan: str = "hybrid"
) -> BackendExplorer:
    """The search panel of notebook 09: query, k and a backend dropdown (e.g. numpy / chroma).

    Introduced in 09_scaling_with_a_vector_database.
    """
    return BackendExplorer(embedder, backends, k=k, plan=plan)


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
