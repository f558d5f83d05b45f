"""Every reflection question of every notebook has an answer key, and its quoted figures are real.

The questions are read from the notebooks themselves (the numbered list under the "Reflection"
heading), so a new notebook, a new question or a reworded one fails here until
``docs/answers/`` answers it. Each key section quotes its question exactly; see
docs/answers/README.md for the format.

Figures: an answer quotes what a notebook prints inside ``<samp>…</samp>``, and each quote must
appear in that notebook's outputs from the offline run (bundled mini-CLIP, offline answerer). The
outputs are the executed notebooks the website build keeps in build/site/executed/; this test
executes nothing itself, and the fixture asks the build to execute only notebooks that have no
fresh executed copy (in a full test run the site test has made them already). A number with two
or more decimals outside ``<samp>`` is a measured figure with no source, and fails.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from project_scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
ANSWERS = ROOT / "docs" / "answers"
EXECUTED = ROOT / "build" / "site" / "executed"
REFLECTION_HEADING = re.compile(r"^#{1,6}\s*Reflection\b", re.I)
QUESTION = re.compile(r"^(\d+)\.\s+(.*)")
SECTION = re.compile(r"^## Question (\d+)\s*$", re.M)
SAMP = re.compile(r"<samp>(.*?)</samp>", re.S)
# a measured-looking figure: two or more decimals (0.457, 3.130), not a price ($12.99)
UNQUOTED_FIGURE = re.compile(r"(?<![\d$.])\d+\.\d{2,}(?![\d.])")
MIN_WORDS = 25


BUILD = load_script("build_site")


def squash(text: str) -> str:
    return " ".join(text.split())


def reflection_questions(notebook: Path) -> dict[int, str]:
    """The notebook's reflection questions by number, as the student reads them (whitespace squashed)."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and REFLECTION_HEADING.match(source):
            questions: dict[int, list[str]] = {}
            current = None
            for line in source.splitlines()[1:]:
                match = QUESTION.match(line)
                if match:
                    current = int(match.group(1))
                    questions[current] = [match.group(2)]
                elif current is not None and line.strip():
                    questions[current].append(line)
            return {number: squash(" ".join(lines)) for number, lines in questions.items()}
    return {}


def key_file(notebook: Path) -> Path:
    """The answer key of a notebook; a ``*_solutions`` notebook shares its exercise notebook's key."""
    own = ANSWERS / f"{notebook.stem}.md"
    if not own.exists() and notebook.stem.endswith("_solutions"):
        return ANSWERS / f"{notebook.stem.removesuffix('_solutions')}.md"
    return own


def key_sections(path: Path) -> dict[int, tuple[str, str]]:
    """``{number: (quoted question, answer text)}`` of an answer key."""
    text = path.read_text(encoding="utf-8")
    parts = SECTION.split(text)
    sections = {}
    for number, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = body.strip().splitlines()
        quote = [line[1:].strip() for line in lines if line.startswith(">")]
        answer = [line for line in lines if not line.startswith(">")]
        sections[int(number)] = (squash(" ".join(quote)), squash(" ".join(answer)))
    return sections


NOTEBOOKS = BUILD.notebook_paths()
KEYS = sorted({key_file(notebook) for notebook in NOTEBOOKS if key_file(notebook).exists()})


def covered_by(key: Path) -> list[Path]:
    return [notebook for notebook in NOTEBOOKS if key_file(notebook) == key]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_reflection_question_has_an_answer(notebook):
    questions = reflection_questions(notebook)
    assert questions, f"{notebook.name} has no numbered questions under a 'Reflection' heading"
    key = key_file(notebook)
    assert key.exists(), f"no answer key for {notebook.name}: write docs/answers/{notebook.stem}.md"
    sections = key_sections(key)
    relative = key.relative_to(ROOT)
    for number, question in questions.items():
        assert number in sections, f"{relative} does not answer question {number} of {notebook.name}: {question!r}"
        quoted, answer = sections[number]
        assert quoted == question, (
            f"{relative}, question {number}, quotes a question {notebook.name} no longer asks; "
            f"update the key.\n  notebook: {question!r}\n  key:      {quoted!r}"
        )
        assert len(answer.split()) >= MIN_WORDS, f"{relative}, question {number}: the answer is missing or a stub"
        assert not re.search(r"\b(TODO|TBD|FIXME)\b", answer), f"{relative}, question {number}: unfinished"
    extra = sorted(set(sections) - set(questions))
    assert not extra, f"{relative} answers questions {extra} that {notebook.name} does not ask"


def test_every_answer_key_belongs_to_a_notebook():
    keys = sorted(p for p in ANSWERS.glob("*.md") if p.name != "README.md")
    orphans = [p.name for p in keys if p not in KEYS]
    assert not orphans, f"answer keys for notebooks that do not exist: {orphans}"


@pytest.mark.parametrize("key", KEYS, ids=lambda p: p.stem)
def test_figures_are_quoted_from_a_run(key):
    text = SAMP.sub(" ", key.read_text(encoding="utf-8"))
    unquoted = UNQUOTED_FIGURE.findall(text)
    assert not unquoted, (
        f"{key.name}: the figures {unquoted} are not quoted from a notebook's output; "
        "put a printed figure in <samp>…</samp> exactly as printed, or leave it out"
    )


def printed_text(notebook: dict) -> str:
    """Everything a notebook printed: streams, plain-text results and Markdown displays."""
    chunks = []
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stdout":
                chunks.append("".join(output["text"]))
            for mime in ("text/plain", "text/markdown"):
                if mime in output.get("data", {}):
                    chunks.append("".join(output["data"][mime]))
    return squash("\n".join(chunks))


@pytest.fixture(scope="module")
def executed_outputs():
    """``{stem: printed text}`` of the offline run of every notebook a key quotes from."""
    quoting = [nb for key in KEYS if SAMP.search(key.read_text(encoding="utf-8")) for nb in covered_by(key)]
    if not quoting:
        return {}
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_site.py"), "--out", str(EXECUTED.parent), "--execute-only"]
        + [nb.stem for nb in quoting],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if done.returncode != 0:
        pytest.fail(f"executing the notebooks offline failed:\n{done.stderr[-6000:]}", pytrace=False)
    return {nb.stem: printed_text(json.loads((EXECUTED / nb.name).read_text(encoding="utf-8"))) for nb in quoting}


@pytest.mark.parametrize("key", [k for k in KEYS if SAMP.search(k.read_text(encoding="utf-8"))], ids=lambda p: p.stem)
def test_quoted_figures_are_printed_by_the_notebook(key, executed_outputs):
    printed = " ".join(executed_outputs[nb.stem] for nb in covered_by(key))
    quotes = [squash(quote) for quote in SAMP.findall(key.read_text(encoding="utf-8"))]
    missing = [quote for quote in quotes if quote not in printed]
    names = ", ".join(nb.name for nb in covered_by(key))
    assert not missing, f"{key.name} quotes output that {names} does not print offline: {missing}"
