"""The package's shape: layers that only import downward, one place for settings, declared public names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import course_utils
from course_utils import config

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "course_utils"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_layer_contract_holds():
    """import-linter checks every import, lazy ones inside functions included (see pyproject.toml)."""
    from importlinter import cli

    assert cli.lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0


def test_the_layer_contract_catches_a_lazy_upward_import(tmp_path, monkeypatch):
    """A copy of the package with one planted lazy import from a low layer to a high one must fail."""
    import shutil

    from importlinter import cli

    copy = tmp_path / "course_utils"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("models", "assets", "samples", "__pycache__"))
    index = copy / "index.py"
    index.write_text(index.read_text() + "\n\ndef _planted():\n    from .workspace import catalog_index\n")
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in list(__import__("sys").modules) if m == "course_utils" or m.startswith("course_utils.")]:
        monkeypatch.delitem(__import__("sys").modules, name)
    assert cli.lint_imports(config_filename=str(tmp_path / "pyproject.toml"), no_cache=True) == 1


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_declares_its_public_names(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    declared = [
        node
        for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets)
    ]
    assert declared, f"{_name(path)} declares no __all__"
    names = ast.literal_eval(declared[0].value)
    module = __import__(_name(path), fromlist=["_"])
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"{_name(path)}.__all__ lists names it does not have: {missing}"


def _environment_reads(path: Path) -> list[int]:
    """Lines where ``path`` reads a variable from the environment (os.environ.get/[...], os.getenv)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = ast.unparse(node.func)
            if target in ("os.environ.get", "os.getenv"):
                lines.append(node.lineno)
        if (
            isinstance(node, ast.Subscript)
            and ast.unparse(node.value) == "os.environ"
            and isinstance(node.ctx, ast.Load)
        ):
            lines.append(node.lineno)
    return lines


def test_environment_variables_are_read_in_config_only():
    readers = {_name(p): _environment_reads(p) for p in MODULES if p.name != "config.py"}
    assert {name: lines for name, lines in readers.items() if lines} == {}
    assert _environment_reads(PACKAGE / "config.py"), "the check must see config.py's own reads"


def test_every_setting_is_documented_once_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `([^`]+)` \|", section, flags=re.M)
    assert documented == [s.name for s in config.SETTINGS]


def test_every_course_variable_in_the_code_is_a_setting():
    used = set()
    for path in MODULES:
        used |= set(re.findall(r"\bCOURSE_[A-Z_]+\b", path.read_text(encoding="utf-8")))
    assert used <= {s.name for s in config.SETTINGS}


def test_top_level_names_are_the_ones_in_all():
    assert sorted(course_utils.__all__) == sorted(set(course_utils.__all__))
    for name in course_utils.__all__:
        assert getattr(course_utils, name) is not None


def _notebook_imports() -> dict[str, set[str]]:
    """name -> the modules the notebooks import it from (``from course_utils... import name``)."""
    import json

    found: dict[str, set[str]] = {}
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            # IPython magics and shell lines are not Python: keep their indentation, drop their text
            code = "\n".join(
                line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!")) else line
                for line in source.splitlines()
            )
            for node in ast.walk(ast.parse(code)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course_utils"):
                    for alias in node.names:
                        found.setdefault(alias.name, set()).add(node.module)
    return found


def test_a_name_the_notebooks_import_has_one_import_path():
    imports = _notebook_imports()
    assert len(imports) > 30, "the scan must see the notebooks' imports"
    assert {name: modules for name, modules in imports.items() if len(modules) > 1} == {}
