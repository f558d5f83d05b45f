"""Write the "Open in Colab" badge cell and the setup cell of every notebook from pyproject.toml.

The repository URL is declared once, in ``[project.urls] Repository``; this script derives each
notebook's badge link and the ``%pip install`` line of the setup cell from it, so a fork only
changes pyproject.toml and runs this script. The setup cell also records ``[project] version``:
the version of ``course_utils`` the notebook was written for, which it compares with the one
installed. Bump the version, run this script, and every notebook expects the new one.

    python scripts/sync_notebooks.py          # rewrite the two cells in notebooks/NN_*.ipynb
    python scripts/sync_notebooks.py --check  # exit 1 if any notebook is out of sync (CI)

The cells are found by their tags (``colab-badge`` and ``setup``); a notebook missing one gets it
inserted in the template's place: the badge right after the H1 title, the setup cell after the
learning goals.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_NAME = re.compile(r"^\d{2}_[a-z0-9]+(?:_[a-z0-9]+)*\.ipynb$")
BADGE_TAG = "colab-badge"
SETUP_TAG = "setup"
PACKAGE = "image-rag-course"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"


def _project(pyproject: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    return tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})


def repository_url(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """``[project.urls] Repository`` from pyproject.toml, without a trailing slash or ``.git``."""
    url = _project(pyproject).get("urls", {}).get("Repository")
    if not url:
        raise SystemExit(f"{pyproject}: add the repository URL under [project.urls] Repository.")
    url = url.rstrip("/")
    return url[: -len(".git")] if url.endswith(".git") else url


def package_version(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """``[project] version`` from pyproject.toml: the ``course_utils`` the notebooks are written for."""
    version = _project(pyproject).get("version")
    if not version:
        raise SystemExit(f"{pyproject}: add the package version under [project] version.")
    return str(version)


def github_slug(url: str) -> str:
    """``owner/repo`` of a GitHub URL."""
    match = re.match(r"^https://github\.com/([^/]+)/([^/]+)$", url)
    if not match:
        raise SystemExit(f"The Repository URL {url!r} is not a https://github.com/<owner>/<repo> URL.")
    return f"{match.group(1)}/{match.group(2)}"


def colab_url(url: str, notebook: str) -> str:
    return f"https://colab.research.google.com/github/{github_slug(url)}/blob/main/notebooks/{notebook}"


def badge_source(url: str, notebook: str) -> str:
    """The markdown of the badge cell for ``notebook`` (a file name)."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(url, notebook)})"


def setup_source(url: str, version: str) -> str:
    """The code of the setup cell, the same in every notebook.

    On Colab it installs the course package and nothing else; everywhere it checks that the
    installed ``course_utils`` is ``version`` and says what to do when it is not. A failed install
    on Colab gets Colab's remedy (a cell to run, the runtime to restart), not a local one.
    """
    return f'''# Setup (the same cell opens every notebook of the course)
import sys

COURSE_VERSION = "{version}"  # the course_utils this notebook was written for
COURSE_PACKAGE = "{PACKAGE} @ git+{url}"
IN_COLAB = "google.colab" in sys.modules

if IN_COLAB:
    # Colab already has torch, transformers and ipywidgets: pip keeps them and adds the course package.
    %pip install -q "{PACKAGE} @ git+{url}"

try:
    import course_utils
except ImportError:
    if IN_COLAB:
        raise ImportError(
            "The course package is not installed (pip's messages above say why). Run "
            f'`%pip install "{{COURSE_PACKAGE}}"` in a new cell, then Runtime > Restart session, '
            "and run this notebook again from the top."
        ) from None
    raise ImportError("Install the course package first: `pip install -e .` in the repository folder.") from None

if course_utils.__version__ != COURSE_VERSION:
    from packaging.version import Version

    if not IN_COLAB:
        fix = "run `pip install -e .` in the folder this notebook comes from, then restart the kernel"
    elif Version(course_utils.__version__) > Version(COURSE_VERSION):
        fix = "open this notebook again from the course: {url}#the-notebooks"
    else:
        fix = f'run `%pip install -q --force-reinstall --no-deps "{{COURSE_PACKAGE}}"` in a new cell, then Runtime > Restart session'
    print(
        f"Warning: this notebook was written for course_utils {{COURSE_VERSION}}, but {{course_utils.__version__}} is "
        f"installed, so some cells may fail. To fix it, {{fix}}."
    )

from course_utils import report_environment

report_environment()'''


def _tagged(nb, tag: str) -> int | None:
    for i, cell in enumerate(nb.cells):
        if tag in cell.get("metadata", {}).get("tags", []):
            return i
    return None


def expected_cells(url: str, notebook: str) -> dict[str, tuple[str, str]]:
    """Tag -> (cell type, source) of the generated cells."""
    return {
        BADGE_TAG: ("markdown", badge_source(url, notebook)),
        SETUP_TAG: ("code", setup_source(url, package_version())),
    }


def sync_notebook(nb, name: str, url: str) -> None:
    """Rewrite (or insert) the badge and setup cells of ``nb`` in place."""
    for tag, (cell_type, source) in expected_cells(url, name).items():
        position = _tagged(nb, tag)
        if cell_type == "markdown":
            cell = nbformat.v4.new_markdown_cell(source, metadata={"tags": [tag]})
        else:
            cell = nbformat.v4.new_code_cell(source, metadata={"tags": [tag]})
        cell["id"] = tag  # stable ids keep the files deterministic
        if position is not None:
            nb.cells[position] = cell
        else:
            # badge right after the H1 title; setup after the learning goals that follow the badge
            after = 1 if tag == BADGE_TAG else (_tagged(nb, BADGE_TAG) or 0) + 2
            nb.cells.insert(min(after, len(nb.cells)), cell)


def notebook_paths(folder: Path = ROOT / "notebooks") -> list[Path]:
    """Every ``NN_*.ipynb`` in ``folder``, in order."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb") if p.is_file())


def problems(nb, name: str, url: str) -> list[str]:
    """What differs between ``nb``'s badge/setup cells and the generated ones (empty: in sync)."""
    found = []
    for tag, (cell_type, source) in expected_cells(url, name).items():
        position = _tagged(nb, tag)
        if position is None:
            found.append(f"no cell tagged {tag!r}")
        elif nb.cells[position].cell_type != cell_type or nb.cells[position].source != source:
            found.append(f"the {tag!r} cell differs from the generated one")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report notebooks that are out of sync")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/NN_*.ipynb")
    args = parser.parse_args(argv)
    url = repository_url()
    stale = 0
    for path in args.notebooks or notebook_paths():
        nb = nbformat.read(path, as_version=4)
        found = problems(nb, path.name, url)
        if not found:
            continue
        stale += 1
        if args.check:
            print(f"out of sync: {path}: {'; '.join(found)}")
        else:
            sync_notebook(nb, path.name, url)
            nbformat.write(nb, path)
            print(f"updated: {path}")
    if args.check and stale:
        print("Run `python scripts/sync_notebooks.py` to regenerate the badge and setup cells.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
