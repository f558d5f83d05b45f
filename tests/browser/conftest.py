"""Fixtures for the browser tests: a private notebook server and a headless Chromium.

The notebooks run in a real notebook front end (offline: mini-CLIP + the offline answerer) and a
real Chromium drives the page, so a panel that works in a kernel test but renders blank in the
browser fails here. The tests take ``notebook_page`` and run once in each front end installed
(:func:`front_ends`): JupyterLab 4 in the default environment (ipywidgets 8); JupyterLab 4 with
jupyterlab_widgets 1.1 and classic Notebook 6.5 with widgetsnbextension 3.6 in the "colab"
environment of scripts/version_matrix.py (Colab's ipywidgets 7.7.1).

Everything started here is always stopped again, also when a test fails: the server's kernels via
the REST API, then the server, then (last resort) every process it left behind.

Skips only where no Chromium (or no front end) exists and ``CI`` is not set; under CI a
missing one is a failure. Set ``COURSE_CHROMIUM`` to use another Chromium/Chrome executable.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = REPO / "test-artifacts" / "browser"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
]

# Lab settings for a predictable page: every cell stays in the DOM (no virtual scrolling), no news
# or update toasts over the panels, no autosave.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
        "windowingMode": "none",
        "autoStartDefaultKernel": True,  # no "Select Kernel" dialog over the notebook
    },
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}

SERVER_START_S = 90
KERNEL_ENV = {"COURSE_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg"}


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives a notebook front end with headless Chromium (slow)")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _missing(reason: str):
    """Skip locally, fail in CI: CI must never silently skip the browser tests."""
    if _in_ci():
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def find_chromium() -> str | None:
    """The Chromium to drive: $COURSE_CHROMIUM, Debian's /usr/bin/chromium, or one on PATH."""
    candidates = [os.environ.get("COURSE_CHROMIUM"), "/usr/bin/chromium"]
    candidates += [shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _major(package: str) -> int | None:
    try:
        return int(version(package).split(".")[0])
    except (PackageNotFoundError, ValueError):
        return None


def front_ends() -> list[str]:
    """The notebook front ends installed here with a widget extension; the tests run in each.

    "lab": JupyterLab 4 with jupyterlab_widgets (3.x draws ipywidgets 8; 1.1 draws ipywidgets 7).
    "classic": classic Notebook 6 with widgetsnbextension (3.6 draws ipywidgets 7, like Colab's own
    widget manager). Notebook 7 is JupyterLab inside, not the classic page.
    """
    found = []
    if (_major("jupyterlab") or 0) >= 4 and _major("jupyterlab_widgets") is not None:
        found.append("lab")
    if _major("notebook") == 6 and _major("widgetsnbextension") is not None:
        found.append("classic")
    return found


# --------------------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (kernels run in their own sessions, so a group kill misses them)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _mentioning(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (our private runtime dir: only our kernels)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class NotebookServer:
    """A notebook server on 127.0.0.1 with a random token, serving a copy of the notebooks."""

    app = ""  # the front end's name in messages

    def __init__(self, root: Path, home: Path, log: Path) -> None:
        self.root, self.home, self.log_path = root, home, log
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.runtime_dir = home / "runtime"

    def command(self) -> list[str]:
        raise NotImplementedError

    def notebook_url(self, notebook: str) -> str:
        raise NotImplementedError

    # -- lifecycle
    def start(self) -> None:
        config, data, runtime, ipython = (self.home / name for name in ("config", "data", "runtime", "ipython"))
        for folder in (config, data, runtime, ipython):
            folder.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **KERNEL_ENV,
            # user state stays out; sys.prefix/share/jupyter (extensions, kernels) is still searched
            "JUPYTER_CONFIG_DIR": str(config),
            "JUPYTER_DATA_DIR": str(data),
            "JUPYTER_RUNTIME_DIR": str(runtime),
            "IPYTHONDIR": str(ipython),
            # the kernel imports course_utils from this checkout, wherever the notebooks were copied
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        env.pop("JUPYTER_PATH", None)
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            self.command(), env=env, cwd=self.root, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.app} exited with code {self.process.returncode}:\n{self.log_tail()}")
            try:
                status = self.api("GET", "/api/status")
            except (OSError, urllib.error.URLError):
                time.sleep(0.5)
                continue
            if "started" in status:
                return
        raise RuntimeError(f"{self.app} did not answer within {SERVER_START_S} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Kernels, then the server, politely; then SIGKILL whatever is left. Never raises."""
        if self.process is None:
            return
        leftovers = _descendants(self.process.pid)
        try:
            self.shutdown_kernels()
            self.api("POST", "/api/shutdown", timeout=10)
            self.process.wait(timeout=20)
        except Exception:
            pass
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=10)
        # kernels live in their own sessions: kill any the shutdown did not end, also those of a
        # server that died (they no longer hang below it, but their connection file is ours)
        _kill([pid for pid in leftovers if Path(f"/proc/{pid}").exists()] + _mentioning(str(self.runtime_dir)))
        self._log.close()
        self.process = None

    # -- REST API
    def api(self, method: str, path: str, timeout: float = 5) -> dict | list:
        request = urllib.request.Request(
            self.url + path, method=method, headers={"Authorization": f"token {self.token}"}
        )
        if method != "GET":
            request.data = b""
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else {}

    def shutdown_kernels(self) -> None:
        for kernel in self.api("GET", "/api/kernels"):
            try:
                self.api("DELETE", f"/api/kernels/{kernel['id']}", timeout=20)
            except (OSError, urllib.error.URLError):
                pass

    def kernels(self) -> list[dict]:
        return list(self.api("GET", "/api/kernels"))

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class JupyterLab(NotebookServer):
    """JupyterLab 4; jupyterlab_widgets draws the widgets (3.x: ipywidgets 8, 1.1: ipywidgets 7)."""

    app = "JupyterLab"

    def command(self) -> list[str]:
        settings, workspaces = self.home / "settings", self.home / "workspaces"
        workspaces.mkdir(parents=True, exist_ok=True)
        for name, values in LAB_SETTINGS.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        return [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--ServerApp.allow_root=True",  # CI containers run as root
            "--ServerApp.terminals_enabled=False",
            f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={workspaces}",
            "--LabApp.news_url=",
            # window.jupyterapp: lets the tests wait for the notebook's kernel as the page sees it
            "--LabApp.expose_app_in_browser=True",
            "--LanguageServerManager.autodetect=False",
        ]

    def notebook_url(self, notebook: str) -> str:
        return f"{self.url}/lab/tree/{notebook}?token={self.token}&reset"


class ClassicNotebook(NotebookServer):
    """Classic Notebook 6 with widgetsnbextension: ipywidgets 7's own front end, Colab's closest."""

    app = "Notebook"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "notebook",
            "--no-browser",
            "--NotebookApp.ip=127.0.0.1",
            f"--NotebookApp.port={self.port}",
            "--NotebookApp.port_retries=0",
            f"--NotebookApp.token={self.token}",
            f"--NotebookApp.notebook_dir={self.root}",
            "--NotebookApp.allow_root=True",  # CI containers run as root
            "--NotebookApp.terminals_enabled=False",
            "--NotebookApp.show_banner=False",  # no "Notebook 7 is coming" bar over the cells
        ]

    def notebook_url(self, notebook: str) -> str:
        return f"{self.url}/notebooks/{notebook}?token={self.token}"


SERVERS: dict[str, type[NotebookServer]] = {"lab": JupyterLab, "classic": ClassicNotebook}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    path = find_chromium()
    if path is None:
        _missing("No Chromium executable found (apt-get install chromium, or set COURSE_CHROMIUM)")
    return path


@pytest.fixture(scope="session")
def playwright_sync():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("The Python package 'playwright' is missing: pip install -e '.[test]'", pytrace=False)
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)  # a click runs CLIP (and the answerer) in the kernel: allow for a busy CPU
    manager = sync_playwright().start()
    try:
        yield manager
    finally:
        manager.stop()


@pytest.fixture(scope="session")
def browser(playwright_sync, chromium_executable):
    """Headless Chromium with a fresh, temporary profile (Playwright's default for ``launch``)."""
    browser = playwright_sync.chromium.launch(executable_path=chromium_executable, args=CHROMIUM_ARGS, headless=True)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="session")
def notebooks_copy(tmp_path_factory) -> Path:
    """A throwaway copy of notebooks/: the server writes checkpoints there, never in the repository."""
    root = tmp_path_factory.mktemp("notebook-root")
    for notebook in NOTEBOOKS.glob("*.ipynb"):
        shutil.copy2(notebook, root / notebook.name)
    return root


@pytest.fixture(scope="session", params=front_ends() or ["none"])
def front_end(request) -> str:
    """Each usable front end in turn (see :func:`front_ends`): the tests run once in each."""
    if request.param == "none":
        _missing(
            "No notebook front end with a widget extension is installed: pip install jupyterlab "
            "(it brings jupyterlab_widgets), or notebook 6.5 with widgetsnbextension 3.6 for ipywidgets 7"
        )
    return request.param


@pytest.fixture(scope="session")
def notebook_server(front_end, chromium_executable, notebooks_copy, tmp_path_factory):
    """A running server of the front end (one per session and front end); always stopped, kernels included."""
    home = tmp_path_factory.mktemp(f"{front_end}-home")
    server = SERVERS[front_end](notebooks_copy, home, home / f"{front_end}.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def notebook_page(browser, front_end, notebook_server, request):
    """A fresh browser context + page on the server; on failure a screenshot and the server log are kept."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))
    helper = PAGES[front_end](page, notebook_server, console)
    try:
        yield helper
    finally:
        failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
        if failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            stem = re.sub(r"[^\w.-]", "_", request.node.name)
            try:
                page.screenshot(path=str(ARTIFACTS / f"FAILED-{stem}.png"), full_page=True)
            except Exception:
                pass
            (ARTIFACTS / f"FAILED-{stem}.console.txt").write_text("\n".join(console))
            (ARTIFACTS / f"FAILED-{stem}.server.log").write_text(notebook_server.log_tail(20_000))
        context.close()
        notebook_server.shutdown_kernels()  # free the CPU and memory before the next notebook


# --------------------------------------------------------------------------- page helpers


def _numbered(prompt: str) -> bool:
    return re.search(r"\[\d+\]", prompt) is not None


class NotebookPage:
    """The notebook page: open a notebook, run all cells through the menu, find a widget panel.

    A front end supplies its selectors and how to read its kernel's state; the rest is shared.
    """

    OUTPUTS = ""  # one cell output
    ERROR_OUTPUTS = ""  # tracebacks and stderr

    def __init__(self, page, server: NotebookServer, console: list[str]) -> None:
        self.page, self.server, self.console = page, server, console
        self.notebook = ""

    # -- what a front end supplies
    def prompts(self) -> list[str]:
        """The prompt of every code cell: "[ ]" (not run), "[*]" (queued or running), "[12]" (done)."""
        raise NotImplementedError

    def session_state(self) -> dict:
        """The notebook's kernel as the page sees it: connected? idle? (for waits and messages)."""
        raise NotImplementedError

    def _page_ready(self) -> bool:
        """The page has loaded the notebook and its kernel is connected and idle."""
        raise NotImplementedError

    def _click_run_all(self) -> None:
        raise NotImplementedError

    # -- shared
    def _kernel_ready(self) -> bool:
        """The kernel is idle, per the server (REST) and per the page."""
        for session in self.server.api("GET", "/api/sessions"):
            if session.get("path") == self.notebook:
                kernel = session.get("kernel") or {}
                if kernel.get("execution_state") == "idle" and kernel.get("connections", 0) >= 1:
                    return self._page_ready()
        return False

    def _wait(self, condition, timeout_s: float, what: str, poll_s: float = 0.25):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            self.page.wait_for_timeout(poll_s * 1000)
        raise AssertionError(
            f"timed out after {timeout_s:.0f} s waiting for {what}; prompts: {self.prompts()}; "
            f"kernel seen by the page: {self.session_state()}"
        )

    def open_notebook(self, name: str, timeout_s: float = 90) -> None:
        """Open ``name`` and wait until all its cells are on the page and its kernel is ready.

        A front end shows the notebook (and an "idle" indicator) before its kernel is connected; a
        Run All issued in that window is silently dropped, hence the checks of the kernel through
        the REST API and through the page itself.
        """
        self.notebook = name
        code_cells = sum(
            c["cell_type"] == "code" for c in self.server.api("GET", f"/api/contents/{name}")["content"]["cells"]
        )
        self.page.goto(self.server.notebook_url(name), timeout=timeout_s * 1000)
        self._wait(lambda: len(self.prompts()) == code_cells, timeout_s, f"the {code_cells} code cells of {name}")
        self._wait(self._kernel_ready, timeout_s, f"the kernel of {name}")

    def run_all(self, timeout_s: float = 300) -> None:
        """Run All Cells from the menu, then wait until every code cell has an execution count.

        Fails with the notebook's error output when execution stops at an exception.
        """
        for _attempt in range(3):
            self._click_run_all()
            try:  # every code cell shows [*] at once when the command went through
                self._wait(lambda: any("*" in p or _numbered(p) for p in self.prompts()), 10, "Run All to start")
                break
            except AssertionError:
                self.page.keyboard.press("Escape")
        else:
            raise AssertionError(f"Run All Cells did not start {self.notebook}: {self.session_state()}")

        def finished() -> str | None:
            prompts = self.prompts()
            if any("*" in p for p in prompts):
                return None
            if all(_numbered(p) for p in prompts):
                return "done"
            return "stopped" if self._kernel_ready() else None

        state = self._wait(finished, timeout_s, f"Run All of {self.notebook} to finish")
        if state == "stopped":
            self.page.wait_for_timeout(1000)  # a last look: a transient "[ ]" between two cells
            if finished() != "done":
                raise AssertionError(
                    f"Run All stopped at an error in {self.notebook} (prompts {self.prompts()}):\n{self.error_text()}"
                )

    def error_text(self) -> str:
        """The text of the error outputs (tracebacks) on the page, for a failure message."""
        return "\n---\n".join(self.page.locator(self.ERROR_OUTPUTS).all_inner_texts())[-6000:]

    def screenshot(self, locator, name: str) -> Path:
        """Save a screenshot of ``locator`` under test-artifacts/browser/ (git-ignored)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        locator.screenshot(path=str(ARTIFACTS / name))
        return ARTIFACTS / name

    def widget_errors(self) -> list[str]:
        """Texts of widget views that failed to render (ipywidgets shows an error box instead)."""
        boxes = self.page.locator(f".jupyter-widgets, {self.OUTPUTS}")
        return boxes.filter(
            has_text=re.compile(r"Error (displaying|rendering|creating) (widget|view)")
        ).all_inner_texts()

    def panel(self, css_class: str, timeout_s: float = 30):
        """The one widget panel with this CSS class, scrolled into view.

        Fails with what the page shows instead when the panel never renders (a missing widget
        extension shows the text repr, a broken view an error box).
        """
        locator = self.page.locator(f".{css_class}")
        try:
            locator.first.wait_for(state="visible", timeout=timeout_s * 1000)
        except Exception:
            outputs = self.page.locator(self.OUTPUTS).all_inner_texts()
            raise AssertionError(
                f"No visible .{css_class} on the page: the panel did not render.\n"
                f"widget errors: {self.widget_errors()}\nlast outputs: {outputs[-5:]}"
            ) from None
        count = locator.count()
        assert count == 1, f"expected exactly one .{css_class} on the page, found {count}"
        locator.scroll_into_view_if_needed()
        return locator


LAB_NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"

# The notebook's session as the page sees it (window.jupyterapp, exposed by the server flag).
_LAB_SESSION = """async (path) => {
  const app = window.jupyterapp;
  if (!app) return {ready: false, why: 'window.jupyterapp not exposed yet'};
  await app.restored;
  const w = app.shell.currentWidget;
  if (!w || !w.context || !w.sessionContext || w.context.path !== path)
    return {ready: false, why: 'notebook not the current tab', current: w && w.context && w.context.path};
  await w.context.ready;
  await w.sessionContext.ready;
  const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
  const state = {kernel: !!kernel, connection: kernel && kernel.connectionStatus, status: kernel && kernel.status,
                 busyStarting: w.sessionContext.isRestarting || w.sessionContext.isTerminating};
  state.ready = !!kernel && state.connection === 'connected' && state.status === 'idle' && !state.busyStarting;
  return state;
}"""


class LabPage(NotebookPage):
    """JupyterLab 4: the Run menu, and the kernel as window.jupyterapp sees it."""

    OUTPUTS = ".jp-OutputArea-output"
    ERROR_OUTPUTS = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"

    def prompts(self) -> list[str]:
        return self.page.evaluate(
            f"() => [...document.querySelectorAll('{LAB_NOTEBOOK} .jp-CodeCell .jp-InputPrompt')]"
            ".map(p => p.textContent.trim())"
        )

    def session_state(self) -> dict:
        return self.page.evaluate(_LAB_SESSION, self.notebook)

    def _page_ready(self) -> bool:
        indicator = self.page.evaluate(
            f"() => {{ const s = document.querySelector('{LAB_NOTEBOOK} .jp-Notebook-ExecutionIndicator');"
            " return s ? s.getAttribute('data-status') : null; }"
        )
        return self.session_state()["ready"] and indicator == "idle"

    def _click_run_all(self) -> None:
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        self.page.locator("li[data-command='runmenu:run-all']").click()


# The notebook's kernel as the classic page sees it; widgetsnbextension gives each kernel a
# widget_manager once it has registered ipywidgets' comm target, so a panel displayed earlier
# would find no one to draw it.
_CLASSIC_SESSION = """() => {
  const nb = window.Jupyter && window.Jupyter.notebook;
  if (!nb || !nb._fully_loaded) return {ready: false, why: 'notebook not loaded yet'};
  const kernel = nb.kernel;
  const icon = document.querySelector('#kernel_indicator_icon');
  const state = {kernel: !!kernel, connected: !!kernel && kernel.is_connected(),
                 widgets: !!(kernel && kernel.widget_manager), indicator: icon && icon.className};
  state.ready = state.connected && state.widgets && /kernel_idle/.test(state.indicator || '');
  return state;
}"""


class ClassicPage(NotebookPage):
    """Classic Notebook 6 (widgetsnbextension: ipywidgets 7's own widget manager)."""

    OUTPUTS = ".output_subarea"
    ERROR_OUTPUTS = ".output_subarea.output_error, .output_subarea.output_stderr"

    def prompts(self) -> list[str]:
        return self.page.evaluate(
            "() => [...document.querySelectorAll('#notebook-container .code_cell .input_prompt')]"
            ".map(p => p.textContent.trim())"
        )

    def session_state(self) -> dict:
        return self.page.evaluate(_CLASSIC_SESSION)

    def _page_ready(self) -> bool:
        return self.session_state()["ready"]

    def _click_run_all(self) -> None:
        self.page.locator("#celllink").click()
        self.page.locator("#run_all_cells > a").click()


PAGES: dict[str, type[NotebookPage]] = {"lab": LabPage, "classic": ClassicPage}
