"""The setup cell's Colab branch, run off Colab: a fake google.colab makes IN_COLAB true."""

import json
import shlex
import sys
import types
from pathlib import Path

import pytest
from IPython.core.inputtransformer2 import TransformerManager

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
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
