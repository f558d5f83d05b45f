"""Each helper's docstring names the notebook that introduces it, and that notebook really uses it.

A docstring's "Introduced in NN_name" is how a student finds the lesson behind a helper (the way
d2l marks where each function is defined). Two checks keep it true: every such line names a
notebook that uses the helper (in its code, or by name in backticks in its prose), and every
function, class or module a notebook imports from ``course_utils`` carries one.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
from functools import cache
from pathlib import Path

import pytest
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "course_utils"
NOTEBOOKS = {p.stem: p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))}
INTRODUCED = re.compile(r"Introduced in\s([^.]*)")
STEM = re.compile(r"\b\d\d_[a-z0-9_]+")


def _cells(stem: str) -> list[dict]:
    return json.loads(NOTEBOOKS[stem].read_text(encoding="utf-8"))["cells"]


@cache
def _code(stem: str) -> str:
    return "\n".join(
        TransformerManager().transform_cell("".join(c["source"])) for c in _cells(stem) if c["cell_type"] == "code"
    )


@cache
def _prose_names(stem: str) -> str:
    """What the notebook's prose puts in backticks: the names it shows the student."""
    prose = "\n".join("".join(c["source"]) for c in _cells(stem) if c["cell_type"] == "markdown")
    return "\n".join(re.findall(r"`([^`\n]+)`", prose))


def _mentions(stem: str, name: str) -> bool:
    word = re.compile(rf"(?<![\w.]){re.escape(name)}\b" if "." in name else rf"\b{re.escape(name)}\b")
    return bool(word.search(_code(stem)) or word.search(_prose_names(stem)))


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _introductions() -> list[tuple[str, str, list[str], list[str]]]:
    """(where, helper name, notebooks its docstring names, names that count as using it)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        public = [
            node.name
            for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_")
        ]
        # the module and its top-level functions and classes: a method belongs to its class
        for node in [tree, *tree.body]:
            if not isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)):
                continue
            doc = ast.get_docstring(node) or ""
            stems = [stem for match in INTRODUCED.finditer(doc) for stem in STEM.findall(match.group(1))]
            if not stems:
                continue
            if isinstance(node, ast.Module):
                # a module is used by a notebook that imports it or any of its public helpers
                found.append((module, module, stems, [module, *public]))
            else:
                found.append((f"{module}.{node.name}", node.name, stems, [node.name]))
    return found


INTRODUCTIONS = _introductions()


def _imported_helpers() -> list[tuple[str, str, object]]:
    """(notebook, dotted name, object) for every function, class or module a notebook imports."""
    found = []
    for stem in NOTEBOOKS:
        for node in ast.walk(ast.parse(_code(stem))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course_utils"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    obj = getattr(module, alias.name)
                    if inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismodule(obj):
                        found.append((stem, f"{node.module}.{alias.name}", obj))
    return found


def test_docstrings_introduce_helpers():
    assert len(INTRODUCTIONS) > 50


@pytest.mark.parametrize(("where", "name", "stems", "uses"), INTRODUCTIONS, ids=[i[0] for i in INTRODUCTIONS])
def test_introduced_in_names_a_notebook_that_uses_the_helper(where, name, stems, uses):
    for stem in stems:
        assert stem in NOTEBOOKS, f"{where}: 'Introduced in {stem}' names no notebook"
        assert any(_mentions(stem, used) for used in uses), f"{where}: {stem} never uses {name}"


def test_every_helper_a_notebook_imports_says_where_it_is_introduced():
    missing = sorted(
        {
            f"{dotted} (imported in {stem})"
            for stem, dotted, obj in _imported_helpers()
            if "Introduced in" not in (inspect.getdoc(obj) or "")
        }
    )
    assert not missing, "add 'Introduced in NN_name.' to the docstrings of: " + "; ".join(missing)
