"""The project's own files agree with each other: README, CI script, pyproject, environment.yml."""

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ]", requirement.strip(), maxsplit=1)[0].lower()


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = (ROOT / "environment.yml").read_text()
    pip_section = env.split("- pip:", 1)[1]
    env_requirements = [line.strip()[2:] for line in pip_section.splitlines() if line.strip().startswith("- ")]
    env_requirements = [r for r in env_requirements if not r.startswith("-e")]
    assert sorted(env_requirements) == sorted(project["dependencies"])


def test_quick_start_has_the_two_commands():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert 'python -m course_utils ask "What red products do you have?"' in commands[0]
    assert "pytest" in commands[1] and ".[test]" in commands[1] and "--nbval-lax" in commands[1]


def test_ci_runs_the_readme_test_command():
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert quick_start_commands()[1] in ci_lines


def test_env_file_is_ignored():
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
