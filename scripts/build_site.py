"""Build the course website: every notebook executed offline, rendered by Jupyter Book 1.x.

    python scripts/build_site.py --out build/site       # the site: build/site/_build/html/index.html
    python scripts/build_site.py --out build/site --execute-only 03_image_retrieval

Three stages, each in one function:

1. **execute** runs each notebook once with the bundled mini-CLIP and the offline answerer
   (``COURSE_OFFLINE=1``) and keeps the executed copy in ``OUT/executed/``, with the saved state of
   its widgets. A copy is reused while the notebook and ``course_utils`` are unchanged, so a second build (CI's, after the test run built the site) executes nothing.
2. **stage** lays out the book's sources in ``OUT/src/``: the README as home page, the executed
   notebooks, and the top-level pages of ``docs/`` (the answer keys in ``docs/answers/`` stay out:
   students read this site). Widgets cannot run on a static page, so each widget output becomes
   a static picture of its last state, built from the saved widget state, with a link to open the
   notebook in Colab. Links to repository files that are not pages go to GitHub.
3. **render** runs ``jupyter-book build`` with ``site/_config.yml`` and ``site/_toc.yml``;
   warnings (a broken link, a missing page) fail the build.

The pages load nothing from other sites (the Colab badge and MathJax are served locally), so the
site also works offline.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from sync_notebooks import BADGE_IMAGE, NOTEBOOK_NAME, colab_url, repository_url  # noqa: E402

NOTEBOOKS = ROOT / "notebooks"
SITE = ROOT / "site"
# Bump when execute() changes (environment, kernel options): the executed copies are then stale.
EXECUTION_VERSION = "1"
OFFLINE_ENV = {"COURSE_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
CELL_TIMEOUT_S = 900
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
BADGE_FILE = "_static/colab-badge.svg"


class BuildError(Exception):
    """A build step failed; the message says which and why."""


def notebook_paths(names: list[str] | None = None) -> list[Path]:
    """The course notebooks (``notebooks/NN_*.ipynb``), or those named (stem or file name)."""
    found = sorted(p for p in NOTEBOOKS.glob("*.ipynb") if NOTEBOOK_NAME.match(p.name))
    if not names:
        return found
    by_stem = {p.stem: p for p in found}
    missing = [n for n in names if Path(n).stem not in by_stem]
    if missing:
        raise BuildError(f"No such notebook in notebooks/: {', '.join(missing)}")
    return [by_stem[Path(n).stem] for n in names]


# --------------------------------------------------------------------------- 1. execute


def _sources_digest() -> str:
    """What every notebook's outputs depend on besides itself: course_utils and EXECUTION_VERSION."""
    digest = hashlib.sha256(EXECUTION_VERSION.encode())
    files = sorted(p for p in (ROOT / "course_utils").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def execution_key(notebook: Path, sources: str) -> str:
    return hashlib.sha256(notebook.read_bytes() + sources.encode()).hexdigest()


def kernel_environment() -> dict[str, str]:
    """The environment the notebooks run in: offline, and figures shown inline.

    CI exports ``MPLBACKEND=Agg`` for the test run; a kernel started with it would draw every
    figure into nothing, so it is removed and the kernel picks Jupyter's inline backend.
    """
    env = {**os.environ, **OFFLINE_ENV}
    env.pop("MPLBACKEND", None)
    # the kernel imports course_utils from this checkout, installed or not
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return env


def execute(notebooks: list[Path], out: Path, log=print) -> dict[str, float]:
    """Execute each notebook offline into ``out/NAME.ipynb`` unless a fresh copy is there.

    Returns the seconds each executed notebook took (reused ones are left out). A cell that raises
    stops the build with the notebook's name and the error.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    out.mkdir(parents=True, exist_ok=True)
    sources = _sources_digest()
    timings: dict[str, float] = {}
    for path in notebooks:
        target = out / path.name
        key = execution_key(path, sources)
        if target.exists():
            try:
                kept = json.loads(target.read_text(encoding="utf-8"))["metadata"].get("course_site", {})
            except (ValueError, KeyError):
                kept = {}
            if kept.get("key") == key:
                log(f"  {path.stem}: unchanged, executed copy reused")
                continue
        notebook = nbformat.read(path, as_version=4)
        client = NotebookClient(
            notebook,
            kernel_name="python3",
            timeout=CELL_TIMEOUT_S,
            store_widget_state=True,
            resources={"metadata": {"path": str(NOTEBOOKS)}},
        )
        start = time.perf_counter()
        try:
            client.execute(env=kernel_environment())
        except CellExecutionError as exc:
            raise BuildError(f"{path.name} failed when executed offline:\n{exc}") from None
        seconds = time.perf_counter() - start
        notebook.metadata["course_site"] = {"key": key, "seconds": round(seconds, 1)}
        nbformat.write(notebook, target)
        timings[path.stem] = seconds
        log(f"  {path.stem}: executed in {seconds:.1f} s")
    return timings


# --------------------------------------------------------------------------- 2. stage: widgets


# Layout traits copied into a static panel's inline style (the ones the course's panels set).
LAYOUT_CSS = (
    "width height min_width max_width margin padding border border_top border_right border_bottom "
    "border_left align_items justify_content flex flex_flow display overflow"
).split()
CONTROLS = {
    "TextModel", "TextareaModel", "ButtonModel", "DropdownModel", "IntSliderModel", "FloatSliderModel",
    "BoundedFloatTextModel", "BoundedIntTextModel", "FloatTextModel", "IntTextModel", "CheckboxModel",
    "ToggleButtonsModel", "RadioButtonsModel", "SelectModel", "ToggleButtonModel", "FileUploadModel",
}  # fmt: skip
BOXES = {"VBoxModel": "vbox", "HBoxModel": "hbox", "BoxModel": "vbox", "GridBoxModel": "hbox"}


class WidgetPreview:
    """Static HTML for a widget tree, from the widget state an executed notebook saved.

    Boxes become flex ``div``s, HTML and images are shown as they were, controls become disabled
    form elements holding their last value. ``interactive`` tells whether the tree had a control:
    then the page says it is a picture and links to Colab.
    """

    def __init__(self, state: dict) -> None:
        self.state = state
        self.interactive = False

    def render(self, model_id: str) -> str:
        model = self.state.get(model_id)
        if model is None:
            raise BuildError(f"widget {model_id} has no saved state")
        name, values = model["model_name"], dict(model["state"])
        for buffer in model.get("buffers", []):  # binary traits (an image's bytes) travel apart
            if buffer.get("encoding") == "base64" and len(buffer["path"]) == 1:
                values[buffer["path"][0]] = base64.b64decode(buffer["data"])
        if name in CONTROLS:
            self.interactive = True
        style = self._style(values.get("layout"))
        classes = " ".join(values.get("_dom_classes") or [])
        if name in BOXES:
            children = "".join(self.render(child.removeprefix("IPY_MODEL_")) for child in values.get("children", []))
            return f'<div class="course-w-box course-w-{BOXES[name]} {classes}"{style}>{children}</div>'
        if name in ("HTMLModel", "HTMLMathModel"):
            return f'<div class="course-w-html {classes}"{style}>{self._label(values)}{values.get("value", "")}</div>'
        if name == "LabelModel":
            return f"<span{style}>{html.escape(str(values.get('value', '')))}</span>"
        if name == "ImageModel":
            data = values.get("value") or b""
            if isinstance(data, str):  # an older ipywidgets saves bytes as base64 text
                data = base64.b64decode(data)
            if not data:  # an empty picture (a photo not chosen yet) shows nothing, live or here
                return ""
            fmt = html.escape(values.get("format") or "png")
            width = f' width="{html.escape(str(values["width"]))}"' if values.get("width") else ""
            src = f"data:image/{fmt};base64,{base64.b64encode(data).decode()}"
            return f'<img class="course-w-image" alt="panel image" src="{src}"{width}{style}>'
        if name in ("FloatProgressModel", "IntProgressModel"):
            return f'<progress value="{values.get("value", 0)}" max="{values.get("max", 100)}"{style}></progress>'
        if name in ("ButtonModel", "FileUploadModel"):  # an upload is a button that opens a file chooser
            return f"<button disabled{style}>{html.escape(values.get('description', ''))}</button>"
        if name in ("DropdownModel", "SelectModel", "RadioButtonsModel", "ToggleButtonsModel"):
            labels, chosen = values.get("_options_labels", []), values.get("index")
            options = "".join(
                f"<option{' selected' if i == chosen else ''}>{html.escape(str(label))}</option>"
                for i, label in enumerate(labels)
            )
            return f'<label class="course-w-control"{style}>{self._label(values)}<select disabled>{options}</select></label>'
        if name in ("IntSliderModel", "FloatSliderModel"):
            value = values.get("value")
            slider = (
                f'<input type="range" min="{values.get("min")}" max="{values.get("max")}" value="{value}" disabled>'
            )
            return f'<label class="course-w-control"{style}>{self._label(values)}{slider} {html.escape(str(value))}</label>'
        if name == "CheckboxModel":
            checked = " checked" if values.get("value") else ""
            return f'<label class="course-w-control"{style}><input type="checkbox" disabled{checked}>{self._label(values)}</label>'
        if name in CONTROLS:  # text boxes of every kind
            value = html.escape(str(values.get("value", "")), quote=True)
            placeholder = html.escape(str(values.get("placeholder") or ""), quote=True)
            field = f'<input type="text" value="{value}" placeholder="{placeholder}" disabled>'
            return f'<label class="course-w-control"{style}>{self._label(values)}{field}</label>'
        raise BuildError(f"no static preview for a {name} widget: teach WidgetPreview.render to draw it")

    def _style(self, layout_ref: str | None) -> str:
        layout = self.state.get((layout_ref or "").removeprefix("IPY_MODEL_"), {}).get("state", {})
        rules = [f"{key.replace('_', '-')}: {layout[key]}" for key in LAYOUT_CSS if layout.get(key)]
        return f' style="{html.escape("; ".join(rules), quote=True)}"' if rules else ""

    @staticmethod
    def _label(values: dict) -> str:
        text = values.get("description") or ""
        return f"<span class='course-w-label'>{html.escape(text)}</span> " if text else ""


def static_widgets(notebook: dict, colab_link: str) -> int:
    """Replace every widget output of ``notebook`` by a static preview; returns how many panels.

    The saved widget state is dropped afterwards: with it, the renderer would load the widget
    JavaScript from a CDN, and without a kernel the live widgets could not react anyway.
    """
    state = notebook.get("metadata", {}).pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    panels = 0
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                continue
            preview = WidgetPreview(state)
            body = preview.render(view["model_id"])
            if preview.interactive:
                panels += 1
                note = (
                    '<p class="course-static-note">A picture of this interactive panel as the notebook left it '
                    "(the self-check below drove it); it cannot react on this page. "
                    f'<a class="course-colab-link" href="{html.escape(colab_link, quote=True)}">'
                    "Open the notebook in Colab</a> to use it.</p>"
                )
                body = f'<div class="course-static-panel">{note}{body}</div>'
            output["data"] = {"text/html": body}
    return panels


# --------------------------------------------------------------------------- 2. stage: pages

_LINK = re.compile(r"(!?\[[^\[\]]*\])\(([^)\s]+)\)")  # [label](target) or ![alt](image), no nested brackets


def rewrite_markdown(text: str, source: Path, site_pages: set[Path], repo_url: str, out_dir: Path) -> str:
    """Point the Colab badge at the local copy, and links to non-page repository files at GitHub.

    ``source`` is where the text lives in the repository and ``out_dir`` where it is staged
    (relative to the book's root); ``site_pages`` are the repository paths that become pages.
    """
    depth = len(out_dir.parts)
    text = text.replace(BADGE_IMAGE, "../" * depth + BADGE_FILE)

    def fix(match: re.Match) -> str:
        label, target = match.groups()
        if re.match(r"^[a-z]+:|^#|^/", target) or label.startswith("!"):
            return match.group(0)
        path, _, anchor = target.partition("#")
        resolved = (ROOT / source.parent / path).resolve()
        try:
            relative = resolved.relative_to(ROOT)
        except ValueError:
            return match.group(0)
        if relative in site_pages:
            return match.group(0)
        kind = "tree" if resolved.is_dir() else "blob"
        return f"{label}({repo_url}/{kind}/main/{relative.as_posix()}{'#' + anchor if anchor else ''})"

    return _LINK.sub(fix, text)


def site_docs() -> list[Path]:
    """The documentation pages the site publishes: every top-level ``docs/*.md``.

    ``docs/answers/`` is left out on purpose: the answer keys are for instructors, and this site
    is where students read the course.
    """
    return sorted((ROOT / "docs").glob("*.md"))


def stage(executed: Path, notebooks: list[Path], src: Path) -> dict[str, int]:
    """Lay out the book's sources in ``src`` (emptied first); returns the number of panels per notebook."""
    import yaml

    written: set[Path] = set()

    def write(relative: str | Path, text: str) -> None:
        # unchanged files keep their time stamp, so Sphinx re-renders only the pages that changed
        path = src / relative
        written.add(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")

    repo_url = repository_url()
    docs = site_docs()
    site_pages = {Path("README.md")} | {p.relative_to(ROOT) for p in [*notebooks, *docs]}

    config = yaml.safe_load((SITE / "_config.yml").read_text(encoding="utf-8"))
    config.setdefault("repository", {})["url"] = repo_url
    write("_config.yml", yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    write("_toc.yml", (SITE / "_toc.yml").read_text(encoding="utf-8"))
    for folder in ("_static", "_ext"):
        shutil.rmtree(src / folder, ignore_errors=True)
        shutil.copytree(SITE / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    if not (src / "_vendor" / "_static" / "mathjax").is_dir():
        shutil.copytree(_mathjax_dir(), src / "_vendor" / "_static" / "mathjax")

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    write("index.md", rewrite_markdown(readme, Path("README.md"), site_pages, repo_url, Path(".")))
    for doc in docs:
        relative = doc.relative_to(ROOT)
        write(relative, rewrite_markdown(doc.read_text(encoding="utf-8"), relative, site_pages, repo_url, Path("docs")))

    panels: dict[str, int] = {}
    for path in notebooks:
        notebook = json.loads((executed / path.name).read_text(encoding="utf-8"))
        relative = path.relative_to(ROOT)
        panels[path.stem] = static_widgets(notebook, colab_url(repo_url, path.name))
        for cell in notebook["cells"]:
            if cell["cell_type"] == "markdown":
                source = "".join(cell["source"])
                cell["source"] = rewrite_markdown(source, relative, site_pages, repo_url, Path("notebooks"))
        write(relative, json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    for stale in [
        p for p in src.rglob("*") if p.is_file() and {"_static", "_ext", "_vendor"}.isdisjoint(p.relative_to(src).parts)
    ]:
        if stale not in written:  # a page whose source went away
            stale.unlink()
    return panels


def _mathjax_dir() -> Path:
    try:
        import jupyter_server_mathjax
    except ImportError:
        raise BuildError(
            "MathJax is missing: pip install jupyter-server-mathjax (or pip install -e '.[site]')"
        ) from None
    return Path(jupyter_server_mathjax.__file__).parent / "static"


# --------------------------------------------------------------------------- 3. render


def render(src: Path, out: Path) -> Path:
    """``jupyter-book build``: HTML into ``out/_build/html``; a warning fails the build."""
    command = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())"]
    command += ["build", str(src), "--path-output", str(out), "--builder", "html", "--warningiserror", "--keep-going"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(f"jupyter-book build failed:\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}")
    return out / "_build" / "html"


def site_tool_missing() -> str | None:
    """Why the site cannot be built here (a package is missing), or None."""
    for module, package in (("jupyter_book", "jupyter-book"), ("jupyter_server_mathjax", "jupyter-server-mathjax")):
        try:
            __import__(module)
        except ImportError:
            return f"{package} is not installed: pip install -e '.[site]'"
    return None


def build(out: Path, names: list[str] | None = None, execute_only: bool = False, log=print) -> dict:
    """The whole build; returns what it did and how long each stage took (seconds)."""
    out = out.resolve()
    notebooks = notebook_paths(names)
    report: dict = {"notebooks": [p.stem for p in notebooks]}
    start = time.perf_counter()
    log(f"Executing {len(notebooks)} notebooks offline into {out / 'executed'}")
    report["executed"] = execute(notebooks, out / "executed", log=log)
    report["execute_s"] = round(time.perf_counter() - start, 1)
    if execute_only:
        return report
    if names:
        raise BuildError("A site holds every notebook: give notebook names only with --execute-only.")
    missing = site_tool_missing()
    if missing:
        raise BuildError(missing)
    start = time.perf_counter()
    report["panels"] = stage(out / "executed", notebooks, out / "src")
    html_dir = render(out / "src", out)
    report["render_s"] = round(time.perf_counter() - start, 1)
    report["html"] = str(html_dir)
    pages = [p for p in html_dir.rglob("*.html") if "_static" not in p.relative_to(html_dir).parts]
    report["pages"] = len([p for p in pages if p.name not in ("genindex.html", "search.html")])
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="build folder (the site lands in OUT/_build/html)")
    parser.add_argument("--execute-only", action="store_true", help="only execute the notebooks into OUT/executed")
    parser.add_argument("notebooks", nargs="*", help="with --execute-only: the notebooks to execute (default all)")
    args = parser.parse_args(argv)
    try:
        report = build(args.out, args.notebooks or None, execute_only=args.execute_only)
    except BuildError as exc:
        print(f"build_site: {exc}", file=sys.stderr)
        return 2
    if "html" in report:
        print(
            f"Site: {report['html']}/index.html | {report['pages']} pages | executing {report['execute_s']} s, "
            f"rendering {report['render_s']} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
