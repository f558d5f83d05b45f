"""The course website, read the way a visitor reads it: in Chromium, page by page.

The site is built from the notebooks executed offline (``scripts/build_site.py``; the session
fixture builds it, reusing executed notebooks that are still fresh) and served on 127.0.0.1.
Each page must load without a console error and without asking any other host for anything; each
notebook page must show figures that really decoded, keep its Colab badge, and show its widget
panels as static pictures that link to Colab; every link between pages must land on a page (and
on the anchor it names).
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest
from project_scripts import load_script

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SITE_OUT = REPO / "build" / "site"
SITE_BUILD_S = 3600  # ten notebooks executed on a busy 2-core machine, then Jupyter Book


BUILD = load_script("build_site")
NOTEBOOKS = [path.stem for path in BUILD.notebook_paths()]
DOCS = [path.stem for path in BUILD.site_docs()]
# notebooks that show one of the course's panels (read from their code, not from the build)
WITH_PANELS = {
    path.stem for path in BUILD.notebook_paths() if "course_utils.widgets import" in path.read_text(encoding="utf-8")
}
# what a widget looks like when nothing rendered it: its text repr, or ipywidgets' placeholder
UNRENDERED_WIDGET = re.compile(r"(VBox|HBox|Box)\(children=|Loading widget")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def course_site(chromium_executable) -> Path:
    """The site's HTML folder, built (or brought up to date) by ``scripts/build_site.py``.

    The build reuses the executed notebooks in build/site/executed/ while the notebooks and
    course_utils are unchanged, so only the first build of a checkout executes them. Skips only
    where Jupyter Book is missing and ``CI`` is not set (like the Chromium check).
    """
    missing = BUILD.site_tool_missing()
    if missing:
        reason = f"The course website cannot be built: {missing}"
        if _in_ci():
            pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)", pytrace=False)
        pytest.skip(reason)
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_site.py"), "--out", str(SITE_OUT)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=SITE_BUILD_S,
    )
    if done.returncode != 0:
        pytest.fail(f"The site build failed:\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}", pytrace=False)
    return SITE_OUT / "_build" / "html"


@pytest.fixture(scope="module")
def site_server(course_site):
    """The built site served over HTTP on 127.0.0.1, as a host would serve it; always stopped."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(course_site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class Visit:
    """One page in a fresh browser context: console messages and requests to other hosts recorded."""

    def __init__(self, browser, base: str, path: str) -> None:
        self.base = base
        self.context = browser.new_context(viewport={"width": 1300, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        self.page.route("**/*", self._only_local)
        response = self.page.goto(urljoin(base, path), wait_until="load")
        assert response is not None and response.status == 200, f"{path}: HTTP {response and response.status}"
        self.page.wait_for_load_state("networkidle")

    def _only_local(self, route) -> None:
        url = route.request.url
        if url.startswith(self.base) or url.startswith("data:"):
            route.continue_()
        else:  # the site must work offline: nothing may come from elsewhere
            self.foreign.append(url)
            route.abort()

    def check_clean(self) -> None:
        assert not self.foreign, f"the page asked other hosts for {self.foreign}"
        assert not self.errors, f"console errors: {self.errors}"

    def images(self, selector: str) -> list[tuple[int, int, str]]:
        """(natural width, natural height, src) of each image, once it has loaded or failed."""
        return self.page.locator(selector).evaluate_all(
            """els => Promise.all(els.map(e => e.complete ? null
                       : new Promise(done => { e.onload = e.onerror = done; })))
                 .then(() => els.map(e => [e.naturalWidth, e.naturalHeight, e.src.slice(0, 80)]))"""
        )

    def links(self) -> list[str]:
        return self.page.locator("a[href]").evaluate_all("els => els.map(e => e.href)")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser, site_server):
    opened: list[Visit] = []

    def open_page(path: str) -> Visit:
        opened.append(Visit(browser, site_server, path))
        return opened[-1]

    yield open_page
    for page in opened:
        page.close()


def _colab_links(visit: Visit) -> list[str]:
    """Where the page's Colab badges point (a link around the badge image)."""
    return visit.page.locator("a:has(img[alt='Open In Colab'])").evaluate_all("els => els.map(e => e.href)")


def test_home_page_links_every_notebook_and_its_colab_badge(visit):
    home = visit("index.html")
    home.check_clean()
    assert "Image RAG" in home.page.title()
    badges = _colab_links(home)
    for stem in NOTEBOOKS:
        expected = BUILD.colab_url(BUILD.repository_url(), f"{stem}.ipynb")
        assert expected in badges, f"the home page has no Colab badge for {stem}: {badges}"
        page_url = urljoin(home.base, f"notebooks/{stem}.html")
        assert page_url in home.links(), f"the home page does not link to the page of {stem}"
    sizes = home.images("img[alt='Open In Colab']")
    assert sizes and all(width > 0 for width, _, _ in sizes), f"a Colab badge did not load: {sizes}"


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_notebook_page_shows_its_figures_badge_and_static_panels(visit, stem):
    page = visit(f"notebooks/{stem}.html")
    page.check_clean()
    colab = BUILD.colab_url(BUILD.repository_url(), f"{stem}.ipynb")

    assert colab in _colab_links(page), f"no Colab badge pointing to {colab}"
    assert all(width > 0 for width, _, _ in page.images("img[alt='Open In Colab']")), "the badge did not load"

    figures = page.images(".cell_output img")
    assert figures, "the page shows no figure: were the notebook's outputs kept?"
    broken = [src for width, height, src in figures if min(width, height) <= 0]
    assert not broken, f"{len(broken)} of {len(figures)} figures did not load: {broken}"

    panels = page.page.locator(".course-static-panel").all()
    if stem in WITH_PANELS:
        assert panels, "the notebook shows a panel, the page no static picture of it"
    for panel in panels:
        assert panel.locator(f"a.course-colab-link[href='{colab}']").count() == 1, "a panel without its Colab link"
        assert "cannot react on this page" in panel.inner_text()
    text = page.page.locator("main").inner_text()
    assert not UNRENDERED_WIDGET.search(text), f"a widget was left unrendered: {UNRENDERED_WIDGET.search(text)}"


@pytest.mark.parametrize("stem", DOCS)
def test_docs_pages_are_published(visit, stem):
    visit(f"docs/{stem}.html").check_clean()


def test_answer_keys_stay_off_the_site(course_site):
    """The answer keys are for instructors; students read this site (see docs/instructor_guide.md)."""
    assert not (course_site / "docs" / "answers").exists()
    # every key's title starts "Answer key · NN" (docs/answers/README.md)
    leaked = [p.name for p in course_site.rglob("*.html") if "Answer key ·" in p.read_text(encoding="utf-8")]
    assert not leaked, f"pages that show an answer key: {leaked}"


def test_links_between_pages_resolve(course_site, site_server):
    """Every internal link of every page lands on an existing file, and on the anchor it names."""
    pages = sorted(p for p in course_site.rglob("*.html") if "_static" not in p.parts)
    ids: dict[Path, set[str]] = {}

    def anchors(path: Path) -> set[str]:
        if path not in ids:
            ids[path] = set(re.findall(r'\sid="([^"]+)"', path.read_text(encoding="utf-8")))
        return ids[path]

    broken = []
    for page in pages:
        url = site_server + page.relative_to(course_site).as_posix()
        for href in re.findall(r'<a\s[^>]*href="([^"]+)"', page.read_text(encoding="utf-8")):
            target, fragment = urldefrag(urljoin(url, href.replace("&amp;", "&")))
            if not target.startswith(site_server):
                continue
            path = course_site / urlparse(target).path[len(urlparse(site_server).path) :]
            if path.is_dir():
                path = path / "index.html"
            if not path.is_file():
                broken.append(f"{page.name}: {href} (no such file)")
            elif fragment and path.suffix == ".html" and fragment not in anchors(path):
                broken.append(f"{page.name}: {href} (no anchor #{fragment})")
    assert not broken, "broken links:\n" + "\n".join(broken)
