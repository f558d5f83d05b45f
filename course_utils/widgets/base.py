"""What every panel shares: the :class:`Panel` base, result cards, images as PNG, and a photo as the query.

The panels themselves are in :mod:`.search` and :mod:`.answers`; import them from
:mod:`course_utils.widgets`.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from ..errors import CourseError
from ..images import ImageLike, open_image
from ..retrieval import QueryImage, check_query, open_query_image
from ..viz import STRONG_COLOR, WEAK_COLOR

__all__ = ["AUTO", "THUMBNAIL", "Panel", "PhotoPanel", "PhotoQuery", "figure_png", "png_bytes", "uploaded_files"]

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
