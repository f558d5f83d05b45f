#!/usr/bin/env python3
"""Run the tests against the package versions learners actually have.

    python scripts/version_matrix.py              # every environment below
    python scripts/version_matrix.py colab        # just one

Each environment is a fresh virtual environment under .matrix/<name>, built from scratch on
every run: the CPU build of torch first, then the course with its test extra and the pins. After
installing, the script checks that every pinned package has exactly its pinned version and prints
them, then runs the environment's tests. "latest" (what `pip install -e ".[test]"` resolves) is
the main test run and is not repeated here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"  # the CPU build; Colab's own torch is never touched by the course
COLAB_VERSIONS = ROOT / "tests" / "colab_versions.txt"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s#;]+)$")


@dataclass(frozen=True)
class ColabVersions:
    """Colab's package list as tests/colab_versions.txt records it."""

    freeze_date: str
    source: str
    pins: dict[str, str]  # package -> Colab's version, installed exactly
    colab_only: dict[str, str]  # package -> Colab's version, recorded but not installed here
    unpinned: tuple[str, ...]  # the course's other dependencies: pip picks their versions


def read_colab_versions(path: Path = COLAB_VERSIONS) -> ColabVersions:
    """Parse the versions file: ``name==version`` lines, plus ``# key: value`` header comments."""
    freeze_date = source = ""
    pins: dict[str, str] = {}
    colab_only: dict[str, str] = {}
    unpinned: tuple[str, ...] = ()
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if line.startswith("# freeze-date:"):
            freeze_date = line.split(":", 1)[1].strip()
        elif line.startswith("# source:"):
            source = line.split(":", 1)[1].strip()
        elif line.startswith("# colab-only:"):
            name, version = line.split(":", 1)[1].split("--")[0].split()
            colab_only[name] = version
        elif line.startswith("# unpinned:"):
            unpinned = tuple(line.split(":", 1)[1].split())
        elif line and not line.startswith("#"):
            match = _PIN.match(line)
            if not match:
                raise ValueError(f"{path.name}:{number}: expected name==version, found {line!r}")
            pins[match.group(1)] = match.group(2)
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", freeze_date) or not source or not pins:
        raise ValueError(f"{path.name}: needs '# freeze-date: YYYY-MM-DD', '# source: ...' and pins")
    return ColabVersions(freeze_date, source, pins, colab_only, unpinned)


COLAB = read_colab_versions()

ENVIRONMENTS = {
    # Colab's preinstalled packages, exactly (tests/colab_versions.txt): transformers, the provider
    # SDKs (openai 2.x, google-genai 2.x), ipywidgets 7.7.1 and the classic Notebook the browser
    # tests draw the panels in.
    "colab": {
        "pins": [f"{name}=={version}" for name, version in COLAB.pins.items()],
        "show": list(COLAB.unpinned),  # the course's other dependencies, at pip's choice
        "pytest": [
            "tests/test_widgets.py",
            "tests/test_colab_setup.py",
            "tests/test_embeddings.py",
            "tests/test_cascade.py",  # the provider SDKs on the wire, and `ask` against both protocols
            "tests/test_key_never_shown.py",
            "tests/test_cli.py",
            "tests/browser/test_panels_in_browser.py",  # ipywidgets 7: the panels in classic Notebook 6.5 (see tests/browser/conftest.py)
            "--nbval-lax",
            "notebooks",
        ],
    },
    # The course's earlier pin: get_image_features returns a tensor, not a model output.
    "legacy": {
        "pins": ["transformers==4.46.3"],
        "pytest": [
            "tests/test_embeddings.py",
            "--nbval-lax",
            "notebooks/02_clip_embeddings.ipynb",
            "notebooks/03_image_retrieval.ipynb",
        ],
    },
}

# Printed for every environment next to its pins: what it runs on, pinned or not.
ALWAYS_SHOWN = ("torch", "transformers", "ipywidgets")

_INSTALLED = """
import json, platform, sys
from importlib.metadata import PackageNotFoundError, version
found = {"python": platform.python_version()}
for name in sys.argv[1:]:
    try:
        found[name] = version(name)
    except PackageNotFoundError:
        found[name] = None
print(json.dumps(found))
"""


def run(cmd: list[str], **kwargs) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)


def installed_versions(python: str, names: list[str]) -> dict[str, str | None]:
    """The versions installed in the environment of ``python`` (None: not installed), and Python's."""
    done = subprocess.run([python, "-c", _INSTALLED, *names], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def check_versions(name: str, pins: list[str], found: dict[str, str | None]) -> list[str]:
    """Print every version in ``found``, each pin marked; return the pins that were not honoured."""
    pinned = dict(pin.split("==") for pin in pins)
    wrong = [
        f"{pkg}: pinned {want}, installed {found.get(pkg)}" for pkg, want in pinned.items() if found.get(pkg) != want
    ]
    print(f"[{name}] installed versions:")
    for package, have in found.items():
        if package in pinned:
            note = "== the pin" if have == pinned[package] else f"NOT THE PIN {pinned[package]}"
        elif name == "colab" and package in COLAB.colab_only:
            note = f"(Colab has {COLAB.colab_only[package]}: see tests/colab_versions.txt)"
        else:
            note = "(not pinned)"
        print(f"  {package:<20} {have or 'missing':<14} {note}")
    return wrong


def run_environment(name: str) -> tuple[float, float]:
    """Build the environment and run its tests; return (build seconds, test seconds)."""
    spec = ENVIRONMENTS[name]
    venv = ROOT / ".matrix" / name
    shutil.rmtree(venv, ignore_errors=True)  # a previous local run's; CI starts from a fresh clone
    started = time.perf_counter()
    run([sys.executable, "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"])
    run([python, "-m", "pip", "install", "-q", TORCH])
    run([python, "-m", "pip", "install", "-q", "-e", f"{ROOT}[test]", *spec["pins"]])
    if name == "colab":
        print(f"[colab] Colab's package list of {COLAB.freeze_date} ({COLAB.source})", flush=True)
    shown = [pin.split("==")[0] for pin in spec["pins"]]
    shown += [package for package in (*ALWAYS_SHOWN, *spec.get("show", [])) if package not in shown]
    wrong = check_versions(name, spec["pins"], installed_versions(python, shown))
    if wrong:
        raise RuntimeError(f"[{name}] pip did not install the pinned versions: {'; '.join(wrong)}")
    built = time.perf_counter()
    env = dict(os.environ, COURSE_OFFLINE="1", HF_HUB_OFFLINE="1", MPLBACKEND="Agg")
    run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *spec["pytest"]], cwd=ROOT, env=env)
    return built - started, time.perf_counter() - built


def main(names: list[str]) -> int:
    names = names or list(ENVIRONMENTS)
    unknown = [n for n in names if n not in ENVIRONMENTS]
    if unknown:
        print(f"unknown environment(s) {', '.join(unknown)}; choose from {', '.join(ENVIRONMENTS)}", file=sys.stderr)
        return 2
    timings = {}
    for name in names:
        try:
            timings[name] = run_environment(name)
        except subprocess.CalledProcessError as exc:
            print(f"[{name}] FAILED: {' '.join(exc.cmd[:4])} ... exited {exc.returncode}", file=sys.stderr)
            return 1
        except RuntimeError as exc:
            print(f"{exc}", file=sys.stderr)
            return 1
    for name, (build, tests) in timings.items():
        print(f"[{name}] passed in {(build + tests) / 60:.1f} min (build {build / 60:.1f}, tests {tests / 60:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
