"""The setup cell's Colab branch, run off Colab: a fake google.colab makes IN_COLAB true."""

import json
import re
import shlex
import sys
import types
from pathlib import Path

import pytest
from IPython.core.inputtransformer2 import TransformerManager

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
FAKE_KEY = "AQ.fake-colab-secret-0123456789"
KEEP_COLABS_OWN = ("torch", "transformers", "ipywidgets", "widgetsnbextension", "jupyterlab-widgets")


def setup_cell(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return next("".join(c["source"]) for c in cells if "setup" in c.get("metadata", {}).get("tags", []))


@pytest.fixture
def fake_colab(monkeypatch):
    """A google.colab package whose userdata holds one Gemini secret and refuses the rest."""

    class SecretNotFoundError(Exception):
        pass

    def get(name):
        if name == "GEMINI_API_KEY":
            return FAKE_KEY
        raise SecretNotFoundError(name)

    colab = types.ModuleType("google.colab")
    colab.userdata = types.SimpleNamespace(get=get, SecretNotFoundError=SecretNotFoundError)
    google = sys.modules.get("google") or types.ModuleType("google")
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.userdata", colab.userdata)
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "COURSE_OFFLINE", "COURSE_LLM_PROVIDERS"):
        monkeypatch.setenv(name, "")  # recorded first, so the secret copied into os.environ is undone
        monkeypatch.delenv(name)
    import course_utils.llm.keys as cascade

    monkeypatch.setattr(cascade, "_COLAB_MISSING", set(), raising=False)
    return colab


class FakeShell:
    def __init__(self):
        self.magics = []

    def run_line_magic(self, name, line, *args, **kwargs):
        self.magics.append((name, line))


def test_every_notebook_has_the_same_setup_cell():
    assert NOTEBOOKS and len({setup_cell(p) for p in NOTEBOOKS}) == 1


def test_colab_branch_installs_only_the_course_and_reads_secrets(fake_colab, capsys, monkeypatch):
    code = TransformerManager().transform_cell(setup_cell(NOTEBOOKS[0]))
    shell = FakeShell()
    exec(compile(code, "setup-cell", "exec"), {"get_ipython": lambda: shell, "__name__": "__main__"})
    assert [name for name, _ in shell.magics] == ["pip"]
    words = shlex.split(shell.magics[0][1])
    assert words[0] == "install" and any(w.startswith("image-rag-course") for w in words)
    assert not {"-U", "--upgrade", "--force-reinstall", "--no-cache-dir", "-I", "--ignore-installed"} & set(words)
    assert not any(w.split("=")[0].split("<")[0].split(">")[0].lower() in KEEP_COLABS_OWN for w in words)
    out = capsys.readouterr().out
    assert "Google Colab" in out and "Gemini" in out
    assert FAKE_KEY not in out


def test_local_branch_installs_nothing(capsys):
    code = TransformerManager().transform_cell(setup_cell(NOTEBOOKS[0]))
    shell = FakeShell()
    exec(compile(code, "setup-cell", "exec"), {"get_ipython": lambda: shell, "__name__": "__main__"})
    assert shell.magics == []
    assert "local" in capsys.readouterr().out


def _run_setup_cell(shell: FakeShell) -> None:
    code = TransformerManager().transform_cell(setup_cell(NOTEBOOKS[0]))
    exec(compile(code, "setup-cell", "exec"), {"get_ipython": lambda: shell, "__name__": "__main__"})


def _written_for() -> str:
    return re.search(r'COURSE_VERSION = "([^"]+)"', setup_cell(NOTEBOOKS[0])).group(1)


def test_the_notebooks_are_written_for_the_version_this_package_declares():
    import course_utils

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert _written_for() == project["version"] == course_utils.__version__


def test_a_matching_version_prints_no_warning_and_reports_it(capsys):
    _run_setup_cell(FakeShell())
    out = capsys.readouterr().out
    assert "Warning" not in out
    assert f"course_utils  {_written_for()}" in out


@pytest.mark.parametrize(
    ("installed", "remedy"),
    [
        ("99.0.0", "open this notebook again from the course: https://github.com/"),  # a copy saved long ago
        ("0.0.1", "--force-reinstall --no-deps"),  # an older install left in the runtime
    ],
)
def test_version_drift_on_colab_says_what_to_do_there(fake_colab, capsys, monkeypatch, installed, remedy):
    import course_utils

    monkeypatch.setattr(course_utils, "__version__", installed)
    shell = FakeShell()
    _run_setup_cell(shell)
    out = capsys.readouterr().out
    assert f"written for course_utils {_written_for()}, but {installed} is installed" in out
    assert remedy in out
    assert "pip install -e" not in out
    assert [name for name, _ in shell.magics] == ["pip"]  # the check itself installs nothing
    if "--force-reinstall" in remedy:
        assert "Runtime > Restart session" in out
        words = out.split("%pip install", 1)[1].split("`", 1)[0]
        assert not any(lib in words for lib in KEEP_COLABS_OWN)


def test_version_drift_locally_says_to_reinstall_from_the_checkout(capsys, monkeypatch):
    import course_utils

    monkeypatch.setattr(course_utils, "__version__", "0.0.1")
    _run_setup_cell(FakeShell())
    out = capsys.readouterr().out
    assert "but 0.0.1 is installed" in out and "pip install -e ." in out and "%pip" not in out


def test_a_failed_install_on_colab_says_what_to_run_in_a_cell_and_what_to_restart(fake_colab, monkeypatch):
    monkeypatch.setitem(sys.modules, "course_utils", None)  # `import course_utils` now fails, as after a failed pip
    with pytest.raises(ImportError) as raised:
        _run_setup_cell(FakeShell())
    message = str(raised.value)
    assert '%pip install "image-rag-course @ git+https://github.com/' in message
    assert "Runtime > Restart session" in message
    assert "pip install -e" not in message


def test_a_missing_package_locally_says_pip_install_e(monkeypatch):
    monkeypatch.setitem(sys.modules, "course_utils", None)
    with pytest.raises(ImportError, match=r"pip install -e \."):
        _run_setup_cell(FakeShell())
