#!/usr/bin/env python3
"""Run the tests against the package versions learners actually have.

    python scripts/version_matrix.py              # every environment below
    python scripts/version_matrix.py colab        # just one

Each environment is a fresh virtual environment under .matrix/<name>, built from scratch on
every run: the CPU build of torch first, then the course with its test extra and the pins.
"latest" (what `pip install -e ".[test]"` resolves) is the main test run and is not repeated here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"  # the CPU build; Colab's own torch is never touched by the course

ENVIRONMENTS = {
    # Colab's preinstalled widgets (installing ipywidgets 8 there breaks rendering) and the
    # transformers minor a fresh Colab runtime reports (`!pip show transformers`).
    "colab": {
        "pins": ["ipywidgets==7.7.1", "widgetsnbextension~=3.6.0", "jupyterlab_widgets~=1.1", "transformers~=5.0.0"],
        "pytest": ["tests/test_widgets.py", "tests/test_colab_setup.py", "--nbval-lax", "notebooks"],
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


def run(cmd: list[str], **kwargs) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)


def run_environment(name: str) -> float:
    spec = ENVIRONMENTS[name]
    started = time.perf_counter()
    venv = ROOT / ".matrix" / name
    shutil.rmtree(venv, ignore_errors=True)
    run([sys.executable, "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"])
    run([python, "-m", "pip", "install", "-q", TORCH])
    run([python, "-m", "pip", "install", "-q", "-e", f"{ROOT}[test]", *spec["pins"]])
    run([python, "-m", "pip", "list", "--format=freeze"], stdout=subprocess.DEVNULL)
    versions = subprocess.run(
        [python, "-c", "import ipywidgets, transformers; print(ipywidgets.__version__, transformers.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    print(f"[{name}] ipywidgets {versions[0]}, transformers {versions[1]}", flush=True)
    env = dict(os.environ, COURSE_OFFLINE="1", HF_HUB_OFFLINE="1", MPLBACKEND="Agg")
    run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *spec["pytest"]], cwd=ROOT, env=env)
    return time.perf_counter() - started


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
    for name, seconds in timings.items():
        print(f"[{name}] passed in {seconds / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
