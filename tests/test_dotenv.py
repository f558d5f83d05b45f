"""The ``.env`` file: where it is looked for, what it may set, and that its values never reach output.

A ``.env`` is read from the working folder, or from a folder above it up to the root of the git
repository that holds the working folder (notebooks run from ``notebooks/``), never beyond. It is
read as plain text: ``${VAR}`` is not expanded. It supplies the LLM settings only, and an endpoint
only together with its key. Values read from it appear in output only when they are model or
provider names of the expected shape.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from llm_servers import SECRET, closed_port
from nbclient import NotebookClient

from course_utils import config
from course_utils.embeddings import BUNDLED_MODEL_DIR
from course_utils.llm import get_cascade

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Question: What red products do you have?"


@pytest.fixture(autouse=True)
def clean_env(clean_llm_env):
    """Every test here starts from a clean LLM environment (see ``llm_servers.clean_llm_env``)."""


def repository(base: Path) -> Path:
    """``base/project``, a git repository with a ``notebooks/`` folder (the working folder)."""
    project = base / "project"
    (project / ".git").mkdir(parents=True)
    (project / "notebooks").mkdir()
    return project


def test_a_dotenv_above_the_repository_or_the_working_folder_is_never_read(monkeypatch, llm_server, tmp_path):
    server = llm_server("openai")
    steering = f"OPENAI_API_KEY=planted-key-0000\nOPENAI_BASE_URL={server.base_url}\nCOURSE_LLM_PROVIDERS=openai\n"
    (tmp_path / ".env").write_text(steering)  # above the repository, e.g. /tmp/.env on a shared machine
    project = repository(tmp_path)
    monkeypatch.chdir(project / "notebooks")
    response = get_cascade(verbose=False).generate(PROMPT)
    assert response.provider == "offline" and server.requests == []
    assert "OPENAI_BASE_URL" not in os.environ and "OPENAI_API_KEY" not in os.environ

    outside = tmp_path / "elsewhere" / "deeper"  # not in a repository: only its own folder counts
    outside.mkdir(parents=True)
    (tmp_path / "elsewhere" / ".env").write_text(steering)
    monkeypatch.chdir(outside)
    assert get_cascade(verbose=False).generate(PROMPT).provider == "offline" and server.requests == []


def test_a_dotenv_in_the_working_folder_or_the_repository_root_is_read(monkeypatch, llm_server, tmp_path):
    server = llm_server("openai", text="from the project's .env")
    project = repository(tmp_path)
    (project / ".env").write_text(
        f"OPENAI_API_KEY=from-dotenv-key-123\nOPENAI_BASE_URL={server.base_url}\nCOURSE_LLM_PROVIDERS=openai\n"
    )
    monkeypatch.chdir(project / "notebooks")
    assert get_cascade(verbose=False).generate(PROMPT).text == "from the project's .env"
    assert server.requests[0].key == "from-dotenv-key-123"


def test_dotenv_values_are_not_expanded_and_never_shown(monkeypatch, llm_server, capsys, tmp_path):
    server = llm_server("openai", text="A red circle.")
    (tmp_path / ".env").write_text(
        f"OPENAI_API_KEY={SECRET}\nOPENAI_BASE_URL={server.base_url}\n"
        "COURSE_LLM_PROVIDERS=${OPENAI_API_KEY}\n"  # would list the key as an unknown provider
        "OPENAI_VISION_MODEL=${OPENAI_API_KEY}\n"  # would print the key as the model's name
        f"OPENAI_MODEL={SECRET}\n"  # a key pasted into the wrong line
        "COURSE_LLM_TIMEOUT=soon ${HOME}\n"  # would be quoted in an error
    )
    cascade = get_cascade(verbose=True, providers=None)
    shown = [cascade.summary()]
    response = cascade.generate_multimodal(PROMPT, [])
    shown += [repr(response), response.text, response.model]
    shown += [repr(cascade.generate(PROMPT, provider="openai"))]
    captured = capsys.readouterr()
    shown += [captured.out, captured.err]
    assert response.provider == "OpenAI" and server.requests[0].key == SECRET
    for text in shown:
        assert SECRET not in text and "${" not in text and "soon" not in text
    for name in ("COURSE_LLM_PROVIDERS", "OPENAI_VISION_MODEL", "OPENAI_MODEL", "COURSE_LLM_TIMEOUT"):
        assert name not in os.environ
        assert f"{name} in " in captured.err  # one line names the variable it ignored, never its value
    assert captured.err.count("\n") == 4


def test_model_and_provider_names_from_dotenv_are_used_when_well_formed(monkeypatch, llm_server, tmp_path):
    server = llm_server("openai")
    (tmp_path / ".env").write_text(
        f"OPENAI_API_KEY={SECRET}\nOPENAI_BASE_URL={server.base_url}\n"
        "OPENAI_MODEL=gpt-4.1-mini\nOPENAI_VISION_MODEL=org/vision-model:7b\nCOURSE_LLM_PROVIDERS=OpenAI, offline\n"
    )
    cascade = get_cascade(verbose=False)
    assert "text: gpt-4.1-mini, vision: org/vision-model:7b" in cascade.summary()
    assert cascade.generate(PROMPT).model == "gpt-4.1-mini"
    assert [info.name for info in cascade.list_providers()] == ["openai", "offline"]


def test_a_dotenv_may_redirect_a_provider_only_together_with_its_key(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)  # the user's real key, from the shell
    (tmp_path / ".env").write_text(f"OPENAI_BASE_URL=http://127.0.0.1:{closed_port()}/v1\nGROQ_BASE_URL=x\n")
    config.load_dotenv_file()
    assert "OPENAI_BASE_URL" not in os.environ and "GROQ_BASE_URL" not in os.environ
    err = capsys.readouterr().err
    assert "OPENAI_BASE_URL in" in err and "only together with its key" in err


def test_a_dotenv_sets_the_llm_settings_only(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text(
        "HTTPS_PROXY=http://127.0.0.1:9\nLD_PRELOAD=/tmp/x.so\nCOURSE_CACHE_DIR=/tmp/elsewhere\n"
        "GROQ_API_KEY=gsk-from-dotenv-1234\nCOURSE_LLM_CACHE=0\nGROQ_RPM=10\n"
    )
    for name in ("HTTPS_PROXY", "LD_PRELOAD", "COURSE_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    config.load_dotenv_file()
    assert "HTTPS_PROXY" not in os.environ and "LD_PRELOAD" not in os.environ
    assert os.environ.get("COURSE_CACHE_DIR") != "/tmp/elsewhere"
    assert os.environ["GROQ_API_KEY"] == "gsk-from-dotenv-1234"
    assert os.environ["COURSE_LLM_CACHE"] == "0" and os.environ["GROQ_RPM"] == "10"


def test_a_changed_dotenv_is_read_again_and_the_shell_still_wins(monkeypatch, tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("GROQ_API_KEY=first-key-123456\n")
    monkeypatch.setenv("OPENAI_API_KEY", "from-the-shell-123")
    config.load_dotenv_file()
    assert os.environ["GROQ_API_KEY"] == "first-key-123456"
    dotenv.write_text("GROQ_API_KEY=second-key-123456\nOPENAI_API_KEY=from-dotenv-456\n")
    os.utime(dotenv, ns=(1, 1))  # a new modification time, whatever the clock's resolution
    config.load_dotenv_file()
    assert os.environ["GROQ_API_KEY"] == "second-key-123456"
    assert os.environ["OPENAI_API_KEY"] == "from-the-shell-123"


def test_a_dotenv_that_is_not_utf8_is_one_line_and_the_cascade_moves_on(monkeypatch, capsys, tmp_path):
    (tmp_path / ".env").write_bytes(b"OPENAI_API_KEY=caf\xe9-key\xff\n")
    cascade = get_cascade(verbose=False, providers="openai,offline")
    for _ in range(2):
        response = cascade.generate(PROMPT)
        assert response.provider == "offline" and response.attempts[0].reason == "OPENAI_API_KEY not set"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ".env" in err and "UTF-8" in err  # said once, not on every call


def test_a_huge_dotenv_is_not_read(tmp_path):
    """A .env of a million bytes is no file of keys: it is skipped at once, with one line.

    (Reading 500,000 lines took minutes: ``${VAR}`` expansion copied the environment for every
    line. The subprocess's time limit only stops a hang; the fixed code never comes near it.)
    """
    lines = "GROQ_API_KEY=gsk-huge-file-key-1\n" + "".join(f"NOT_A_SETTING_{i}=value{i}\n" for i in range(60_000))
    (tmp_path / ".env").write_text(lines)
    code = (
        "import os; from course_utils import config; config.load_dotenv_file(); print(os.environ.get('GROQ_API_KEY'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "GROQ_API_KEY"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"
    assert done.stderr.count("\n") == 1 and "larger than" in done.stderr


def test_the_notebook_setup_cell_reads_the_repository_dotenv_only(monkeypatch, tmp_path):
    """The setup cell every notebook opens with (scripts/sync_notebooks.py writes it) ignores a
    .env above the repository, reads the repository's own, and shows no key."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import sync_notebooks
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    project = repository(tmp_path)
    (tmp_path / ".env").write_text("GROQ_API_KEY=gsk-planted-above-the-repo\n")
    monkeypatch.setenv("COURSE_CLIP_MODEL", str(BUNDLED_MODEL_DIR))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            sync_notebooks.setup_source(sync_notebooks.repository_url(), sync_notebooks.package_version())
        ),
        nbformat.v4.new_code_cell(f"open('../.env', 'w').write('OPENAI_API_KEY={SECRET}\\n')\nreport_environment()"),
    ]
    NotebookClient(nb, timeout=120, resources={"metadata": {"path": str(project / "notebooks")}}).execute()
    before, after = ("".join(output.get("text", "") for output in cell.outputs) for cell in nb.cells)
    assert "LLM" in before and "Groq" not in before and "OpenAI" not in before
    assert "OpenAI" in after and "Groq" not in after
    assert SECRET not in before + after


def test_an_endpoint_from_dotenv_is_named_not_shown(monkeypatch, tmp_path):
    monkeypatch.delenv("OLLAMA_HOST")
    host = f"http://127.0.0.1:{closed_port()}"
    (tmp_path / ".env").write_text(f"OLLAMA_HOST={host}\n")
    response = get_cascade(verbose=False, providers="ollama-local,offline").generate(PROMPT)
    reason = response.attempts[0].reason
    assert reason.startswith("no server answers at <OLLAMA_HOST from .env>") and host not in reason
    other = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("OLLAMA_HOST", other)  # set in the environment, by the user: shown as it is
    assert other in get_cascade(verbose=False, providers="ollama-local,offline").generate(PROMPT).attempts[0].reason
