"""No key-shaped string is committed, and the scanner really finds one."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check_secrets.py"


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_repository_has_no_key_shaped_strings():
    result = run()
    assert result.returncode == 0, result.stdout


def test_scanner_finds_a_planted_key_without_printing_it(tmp_path):
    fake = "AIza" + "Sy" + "B" * 33  # shaped like a Google key, assembled so this file holds none
    planted = tmp_path / "notebook.ipynb"
    planted.write_text(f'{{"source": ["GEMINI_API_KEY = \\"{fake}\\""]}}\n')
    result = run(planted)
    assert result.returncode == 1
    assert "notebook.ipynb:1: looks like a Google / Gemini API key" in result.stdout
    assert fake not in result.stdout + result.stderr


def test_a_clean_file_passes(tmp_path):
    clean = tmp_path / "ok.py"
    clean.write_text('key = os.environ["GEMINI_API_KEY"]\n')
    assert run(clean).returncode == 0
