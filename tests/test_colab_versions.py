"""Colab's package list (tests/colab_versions.txt): well formed, complete, and what docs/colab.md says.

The "colab" environment of scripts/version_matrix.py installs these versions; CI's machines run
Python 3.11, not Colab's 3.13, so the modules 3.13 removed are checked for here instead.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from IPython.core.inputtransformer2 import TransformerManager
from project_scripts import load_script

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "colab.md"


matrix = load_script("version_matrix")
COLAB = matrix.read_colab_versions()


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _docs_table() -> dict[str, str]:
    """package -> Colab's version, from the table in docs/colab.md."""
    section = DOCS.read_text().split("## The Colab versions CI tests", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+?) \|", section, flags=re.M)
    return {name: version for name, version in rows}


def test_the_file_says_when_and_where_the_versions_come_from():
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", COLAB.freeze_date)
    assert "googlecolab/backend-info" in COLAB.source
    assert COLAB.colab_only["python"].startswith("3.")


def test_every_dependency_of_the_course_is_pinned_or_accounted_for():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    accounted = {_name(n) for n in [*COLAB.pins, *COLAB.colab_only, *COLAB.unpinned]}
    missing = sorted({_name(d) for d in dependencies} - accounted)
    assert not missing, f"add these to tests/colab_versions.txt (pinned, colab-only or unpinned): {missing}"
    # the packages whose Colab version the cascade, the panels and CLIP depend on are pinned
    pinned = {_name(n) for n in COLAB.pins}
    assert {"openai", "google-genai", "ipywidgets", "transformers", "huggingface-hub", "numpy", "pillow"} <= pinned


def test_the_colab_environment_installs_exactly_the_file():
    assert matrix.ENVIRONMENTS["colab"]["pins"] == [f"{n}=={v}" for n, v in COLAB.pins.items()]


def test_docs_record_the_tested_versions_and_the_freeze_date():
    text = DOCS.read_text()
    assert f"freeze of {COLAB.freeze_date}" in text
    table = _docs_table()
    assert table, "docs/colab.md has no table of Colab's versions"
    for name, version in {**COLAB.pins, **COLAB.colab_only}.items():
        assert name in table, f"docs/colab.md's table lacks {name}"
        documented = table[name]
        assert documented == version or "draws widgets itself" in documented, (
            f"docs/colab.md says Colab has {name} {documented}, tests/colab_versions.txt says {version}"
        )
    assert "Python 3.13 is not tested" in text


def test_a_line_that_is_not_an_exact_pin_is_refused(tmp_path):
    good = "# freeze-date: 2026-08-19\n# source: googlecolab/backend-info\nnumpy==2.1.3\n"
    (tmp_path / "ok.txt").write_text(good)
    assert matrix.read_colab_versions(tmp_path / "ok.txt").pins == {"numpy": "2.1.3"}
    (tmp_path / "loose.txt").write_text(good + "transformers>=5\n")
    with pytest.raises(ValueError, match=r"loose.txt:4: expected name==version"):
        matrix.read_colab_versions(tmp_path / "loose.txt")
    (tmp_path / "undated.txt").write_text("numpy==2.1.3\n")
    with pytest.raises(ValueError, match="freeze-date"):
        matrix.read_colab_versions(tmp_path / "undated.txt")


def test_the_log_marks_a_pin_pip_did_not_honour(capsys):
    found = {"python": "3.11.7", "numpy": "2.2.0", "pillow": "11.3.0", "torch": "2.13.0+cpu"}
    wrong = matrix.check_versions("colab", ["numpy==2.1.3", "pillow==11.3.0"], found)
    assert wrong == ["numpy: pinned 2.1.3, installed 2.2.0"]
    log = capsys.readouterr().out
    assert "NOT THE PIN 2.1.3" in log and "pillow               11.3.0         == the pin" in log
    assert f"(Colab has {COLAB.colab_only['python']}" in log


# Modules Python 3.13 removed (PEP 594, and lib2to3): Colab's Python cannot import them.
REMOVED_IN_3_13 = set(
    "aifc audioop cgi cgitb chunk crypt imghdr lib2to3 mailcap msilib nis nntplib ossaudiodev pipes "
    "sndhdr spwd sunau telnetlib uu xdrlib".split()
)


def _python_sources() -> list[tuple[str, str]]:
    sources = [
        (str(p.relative_to(ROOT)), p.read_text())
        for d in ("course_utils", "scripts", "tests")
        for p in (ROOT / d).rglob("*.py")
    ]
    to_python = TransformerManager().transform_cell  # %pip and !commands become plain calls
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        code = [to_python("".join(c["source"])) for c in cells if c["cell_type"] == "code"]
        sources.append((notebook.name, "\n".join(code)))
    return sources


def test_nothing_imports_a_module_python_3_13_removed():
    found = []
    for where, source in _python_sources():
        for node in ast.walk(ast.parse(source)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            found += [f"{where}: {name}" for name in names if name.split(".")[0] in REMOVED_IN_3_13]
    assert not found, f"removed in Python 3.13 (Colab's Python): {found}"
