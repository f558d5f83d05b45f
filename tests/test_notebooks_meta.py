"""Every notebook follows the template: clean, H1 then badge, generated badge/setup cells, good name."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from project_scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


sync = load_script("sync_notebooks")
URL = sync.repository_url()


def _ids(paths):
    return [p.name for p in paths]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_file_name_is_numbered_snake_case(path):
    assert sync.NOTEBOOK_NAME.match(path.name), f"{path.name}: use NN_snake_case.ipynb"


def test_notebook_numbers_are_unique_and_consecutive():
    # a worked-solutions companion (NN_name_solutions.ipynb) shares its exercise notebook's number
    solutions = [p for p in NOTEBOOKS if p.stem.endswith("_solutions")]
    numbers = [int(p.name[:2]) for p in NOTEBOOKS if p not in solutions]
    assert numbers == list(range(1, len(numbers) + 1))
    for path in solutions:
        assert path.with_name(path.stem.removesuffix("_solutions") + ".ipynb").exists(), f"{path.name}: no exercises"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_has_no_outputs_or_execution_counts(path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {i} has outputs: strip them before committing"
            assert cell.execution_count is None, f"cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_starts_with_h1_then_the_badge_then_goals_then_setup(path):
    nb = nbformat.read(path, as_version=4)
    first, badge = nb.cells[0], nb.cells[1]
    assert first.cell_type == "markdown" and re.match(r"^# \S", first.source), "the first cell must be an H1 title"
    assert "tags" in badge.metadata and sync.BADGE_TAG in badge.metadata["tags"]
    assert nb.cells[2].cell_type == "markdown", "learning goals and run time come after the badge"
    assert "run time" in nb.cells[2].source.lower()
    assert sync.SETUP_TAG in nb.cells[3].metadata.get("tags", [])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_badge_and_setup_cells_are_what_sync_generates(path):
    nb = nbformat.read(path, as_version=4)
    assert sync.problems(nb, path.name, URL) == []
    badge = nb.cells[sync._tagged(nb, sync.BADGE_TAG)].source
    assert f"/blob/main/notebooks/{path.name})" in badge


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_ends_with_a_self_check_then_reflection_questions(path):
    nb = nbformat.read(path, as_version=4)
    last_code = max(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    assert "assert" in nb.cells[last_code].source, "the last code cell is the widget self-check"
    tail = " ".join(c.source.lower() for c in nb.cells[last_code + 1 :] if c.cell_type == "markdown")
    assert "reflection" in tail or "questions" in tail


def test_setup_cell_never_upgrades_torch_transformers_or_ipywidgets():
    source = sync.setup_source(URL, sync.package_version())
    # the one line that runs pip; the messages may quote other %pip commands for the student
    pip_lines = [line for line in source.splitlines() if line.strip().startswith("%pip")]
    assert len(pip_lines) == 1
    assert f"git+{URL}" in pip_lines[0]
    for flag in ("-U", "--upgrade", "--force-reinstall", "torch", "transformers", "ipywidgets"):
        assert flag not in pip_lines[0].split()
    assert 'IN_COLAB = "google.colab" in sys.modules' in source and "if IN_COLAB:" in source
    # a reinstall the messages suggest replaces the course package alone, never Colab's libraries
    suggested = [line for line in source.splitlines() if "--force-reinstall" in line]
    assert suggested and all("--no-deps" in line for line in suggested)
    assert "report_environment()" in source


def test_badge_url_comes_from_pyproject():
    assert sync.github_slug("https://github.com/someone/fork") == "someone/fork"
    assert sync.colab_url("https://github.com/a/b", "01_x.ipynb") == (
        "https://colab.research.google.com/github/a/b/blob/main/notebooks/01_x.ipynb"
    )
    with pytest.raises(SystemExit):
        sync.github_slug("https://gitlab.com/a/b")


def test_sync_inserts_missing_cells_and_check_reports_them(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_markdown_cell("Goals. Run time: 1 minute."),
        nbformat.v4.new_code_cell("print(1)"),
    ]
    path = tmp_path / "01_demo.ipynb"
    nbformat.write(nb, path)
    assert sync.main(["--check", str(path)]) == 1
    assert sync.main([str(path)]) == 0
    fixed = nbformat.read(path, as_version=4)
    assert [c.metadata.get("tags", []) for c in fixed.cells] == [[], ["colab-badge"], [], ["setup"], []]
    assert sync.main(["--check", str(path)]) == 0
    fixed.cells[3].source += "\nprint('edited by hand')"
    nbformat.write(fixed, path)
    assert sync.main(["--check", str(path)]) == 1


def test_report_environment_names_versions_device_model_and_no_key(monkeypatch, capsys):
    from course_utils.workspace import report_environment

    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setenv("GEMINI_API_KEY", "sk-secret-value-123")
    report_environment()
    out = capsys.readouterr().out
    import torch
    import transformers

    assert torch.__version__ in out and transformers.__version__ in out
    assert "bundled mini-CLIP (offline)" in out
    assert "device" in out and "sk-secret-value-123" not in out
    monkeypatch.delenv("COURSE_OFFLINE")
    monkeypatch.setenv("COURSE_CLIP_MODEL", "openai/clip-vit-large-patch14")
    report_environment()
    out = capsys.readouterr().out
    assert "openai/clip-vit-large-patch14" in out and "sk-secret-value-123" not in out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_readme_links_every_notebook_on_colab(path):
    readme = (ROOT / "README.md").read_text()
    assert f"]({sync.colab_url(URL, path.name)})" in readme
