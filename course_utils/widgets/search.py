"""The panels that search: design a product (01), compare similarities (02), explore retrieval with
words or a photo (03), and the same query on two vector stores (09).
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets

from ..catalog import COLOR_HEX, PATTERNS, SHAPES, Product, product_from_dict, render_product
from ..errors import CourseError
from ..index import VectorIndex
from ..retrieval import TEXT_WEIGHT, retrieve, retrieve_by_image
from ..viz import similarity_bars
from .base import (
    Panel,
    PhotoPanel,
    _info,
    _layout,
    _query_text,
    _warning,
    figure_png,
    png_bytes,
)

__all__ = [
    "BackendExplorer",
    "ProductDesigner",
    "RetrievalExplorer",
    "SimilarityExplorer",
    "backend_explorer",
    "product_designer",
    "retrieval_explorer",
    "similarity_explorer",
]


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
