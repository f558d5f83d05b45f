"""The ``local`` provider: a vision-language model in this process, on a tiny random SmolVLM-family model.

``scripts/make_tiny_vlm.py`` builds the model offline and saves it with ``save_pretrained``; it
loads through ``AutoProcessor`` and ``AutoModelForImageTextToText``, exactly as the real one does.
Its answers are gibberish: these tests check the plumbing (what reaches the model, the limits,
the cascade's bookkeeping), never the words.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from project_scripts import load_script

from course_utils import config
from course_utils.errors import CourseError
from course_utils.llm import Attempt, Cascade, LocalVLM, free_local_vlm, local_vlm
from course_utils.llm import cascade as cascade_module
from course_utils.prompts import CONTEXT_OPEN, SYSTEM_PROMPT
from course_utils.rag import ImageRAG

ROOT = Path(__file__).resolve().parents[1]
COLOURS = ("red", "lime", "blue")  # rank 1, 2, 3: one strong channel each


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory) -> Path:
    return load_script("make_tiny_vlm").build(tmp_path_factory.mktemp("tiny-vlm"))


@pytest.fixture(autouse=True)
def clean(monkeypatch, tiny_vlm_dir):
    for name in ("COURSE_OFFLINE", "COURSE_LLM_PROVIDERS", "COURSE_LLM_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOCAL_VLM_MODEL", str(tiny_vlm_dir))
    monkeypatch.setenv("LOCAL_VLM_MAX_NEW_TOKENS", "4")  # gibberish either way: keep it short
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    free_local_vlm()
    yield
    free_local_vlm()


@pytest.fixture
def spy(monkeypatch, tiny_vlm_dir):
    """Every ``generate`` call's inputs and output on the loaded tiny model."""
    model, _ = local_vlm.load_local_vlm(str(tiny_vlm_dir), "cpu")
    calls: list[dict] = []
    real = model.generate

    def generate(**kwargs):
        output = real(**kwargs)
        calls.append({**kwargs, "output": output})
        return output

    monkeypatch.setattr(model, "generate", generate)
    return calls


def solid(colour: str, side: int = 256) -> Image.Image:
    return Image.new("RGB", (side, side), colour)


def new_tokens(call: dict) -> int:
    return int(call["output"].shape[1] - call["input_ids"].shape[1])


def test_the_three_images_reach_the_model_in_rank_order_at_their_own_size(spy):
    response = Cascade(providers="local").generate_multimodal("Which colours?", [solid(c) for c in COLOURS])
    [call] = spy
    pixels = call["pixel_values"]
    # SmolVLM's processor would enlarge each 256-pixel image to 2048 and cut 4 x 4 tiles plus a
    # global view (51 tiles for three); capped, each image is one 512-pixel tile
    assert tuple(pixels.shape[:3]) == (1, 3, 3)
    strongest = [int(pixels[0, i].mean(dim=(1, 2)).argmax()) for i in range(3)]
    assert strongest == [0, 1, 2]  # red, green, blue: rank order kept
    assert response.provider == "local"


def test_the_chat_template_carries_the_system_prompt_and_the_fenced_context(spy, tiny_index, tiny_embedder):
    rag = ImageRAG(tiny_index, tiny_embedder, Cascade(providers="local"))
    result = rag.answer("What red products do you have?", k=3)
    [call] = spy
    _, processor = local_vlm.load_local_vlm(str(config.local_vlm_model()), "cpu")
    seen = processor.tokenizer.decode(call["input_ids"][0], skip_special_tokens=False)
    assert seen.startswith("<|im_start|>System: " + SYSTEM_PROMPT)
    assert CONTEXT_OPEN in seen and result.prompt in seen
    assert seen.count("<global-img>") == 3 and seen.endswith("Assistant:")
    assert (result.provider, result.images_sent) == ("local", 3)
    # what was sent: the model's own count of prompt tokens, images included, from which the
    # image tokens are estimated
    assert result.sent.prompt_tokens == int(call["input_ids"].shape[1])
    assert result.sent.image_tokens_source == "estimated" and result.sent.image_tokens > 0


def test_generation_stops_at_the_token_limit_and_the_answer_says_who_gave_it(spy, monkeypatch, tiny_vlm_dir):
    monkeypatch.setenv("LOCAL_VLM_MAX_NEW_TOKENS", "7")
    response = Cascade(providers="local").generate_multimodal("Hi", [solid("red")], max_tokens=100)
    assert new_tokens(spy[-1]) == 7
    assert (response.provider, response.model) == ("local", str(tiny_vlm_dir))
    assert response.attempts == (Attempt("local", "answered"),)
    Cascade(providers="local").generate("Hi", max_tokens=3)  # the caller's smaller limit wins
    assert new_tokens(spy[-1]) == 3
    llm = LocalVLM(max_new_tokens=5)
    llm.generate("Hi")
    assert (llm.last.new_tokens, llm.last.stopped_by) == (5, "token limit")


def test_generation_stops_at_the_time_limit(monkeypatch):
    llm = LocalVLM(max_new_tokens=50, timeout=1e-9)  # already past when the first token is out
    response = llm.generate("Hi")
    assert (llm.last.new_tokens, llm.last.stopped_by) == (1, "time limit")
    assert response.text.endswith(local_vlm.TIME_LIMIT_NOTE)


def test_the_model_is_loaded_once_for_many_calls(monkeypatch):
    from transformers import AutoModelForImageTextToText

    loads = []
    real = AutoModelForImageTextToText.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        loads.append(args[0])
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(AutoModelForImageTextToText, "from_pretrained", classmethod(counting))
    cascade = Cascade(providers="local")
    for _ in range(3):
        cascade.generate_multimodal("Hi", [solid("red")], max_tokens=2)
    LocalVLM().generate("Hi", max_tokens=2)
    assert len(loads) == 1 and local_vlm.loaded_local_vlms() == [(str(config.local_vlm_model()), "cpu")]
    with LocalVLM() as llm:
        llm.generate("Hi", max_tokens=2)
    assert local_vlm.loaded_local_vlms() == []  # the context manager released it


@pytest.mark.parametrize("name", ["missing-folder", "no-such-org/no-such-vlm"])
def test_a_model_that_cannot_load_falls_through_with_one_line_naming_it(monkeypatch, tmp_path, capsys, name):
    model = str(tmp_path / name) if name == "missing-folder" else name
    monkeypatch.setenv("LOCAL_VLM_MODEL", model)
    response = Cascade(providers="local,offline").generate_multimodal("Hi", [solid("red")])
    assert response.provider == "offline"
    failed = response.attempts[0]
    assert (failed.provider, failed.outcome) == ("local", "failed")
    assert f"could not load {model!r}" in failed.reason and "\n" not in failed.reason
    if name == "missing-folder":
        assert failed.reason.endswith("(no such folder)")
    assert "Traceback" not in failed.reason
    err = capsys.readouterr().err
    if "/" in name and not Path(model).is_dir():  # a hub id: a line before the (attempted) download
        assert f"Loading {model} from the Hugging Face hub" in err
    with pytest.raises(CourseError, match="could not load"):
        Cascade(providers="local").generate("Hi")


def test_by_default_the_local_model_runs_only_next_to_a_gpu(monkeypatch, tmp_path):
    monkeypatch.setenv("LOCAL_VLM_MODEL", str(tmp_path / "absent"))
    names = [p.name for p in Cascade().order()]
    assert names[-3:] == ["ollama-local", "local", "offline"]
    monkeypatch.setattr(cascade_module, "cuda_available", lambda: False)
    [info] = [i for i in Cascade().list_providers() if i.name == "local"]
    assert info.state == "skipped" and "no CUDA GPU" in info.detail
    response = Cascade().generate("Hi")
    assert [a for a in response.attempts if a.provider == "local"][0].outcome == "skipped"
    monkeypatch.setenv("COURSE_LLM_PROVIDERS", "local,offline")  # named: runs on a CPU too
    assert Cascade().generate("Hi").attempts[0].outcome == "failed"
    monkeypatch.delenv("COURSE_LLM_PROVIDERS")
    monkeypatch.setattr(cascade_module, "cuda_available", lambda: True)
    assert [a for a in Cascade().generate("Hi").attempts if a.provider == "local"][0].outcome == "failed"


def test_a_bad_token_limit_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("LOCAL_VLM_MAX_NEW_TOKENS", "lots")
    with pytest.raises(CourseError, match="LOCAL_VLM_MAX_NEW_TOKENS='lots' is not a whole number"):
        config.local_vlm_max_new_tokens()
    with pytest.raises(CourseError, match="positive whole number"):
        config.local_vlm_max_new_tokens(0)


# -- the command line, in a subprocess ----------------------------------------------------------------


QUESTION = "What red products do you have?"


@pytest.fixture(scope="module")
def cli_runs(tiny_clip_dir, tiny_vlm_dir, tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, str]]:
    """``ask --json`` in two subprocesses, run side by side: the tiny model, and one that cannot load."""
    from course_utils.embeddings import BUNDLED_MODEL_DIR

    clip = BUNDLED_MODEL_DIR if BUNDLED_MODEL_DIR.is_dir() else tiny_clip_dir
    tmp = tmp_path_factory.mktemp("cli")
    base = {k: v for k, v in os.environ.items() if k not in ("COURSE_OFFLINE", "COURSE_LLM_PROVIDERS")}
    base |= {
        "COURSE_CLIP_MODEL": str(clip),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "LOCAL_VLM_MAX_NEW_TOKENS": "8",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    cases = {
        "local": ("local", str(tiny_vlm_dir)),
        "unloadable": ("local,offline", str(tmp / "no-model-here")),
    }
    started = {}
    for name, (providers, model) in cases.items():
        env = base | {"COURSE_LLM_PROVIDERS": providers, "LOCAL_VLM_MODEL": model}
        env["COURSE_CACHE_DIR"] = str(tmp / name / "cache")
        command = [sys.executable, "-m", "course_utils", "ask", QUESTION, "--json"]
        started[name] = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = {}
    for name, process in started.items():
        out, err = process.communicate(timeout=300)
        runs[name] = (subprocess.CompletedProcess(process.args, process.returncode, out, err), cases[name][1])
    return runs


def test_cli_ask_answered_by_the_local_model_with_three_images(cli_runs):
    done, model = cli_runs["local"]
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["provider"], data["llm_model"], data["images_sent"]) == ("local", model, 3)
    assert data["attempts"] == [{"provider": "local", "outcome": "answered", "reason": ""}]


def test_cli_ask_with_a_model_that_cannot_load_gives_the_offline_answer(cli_runs):
    done, missing = cli_runs["unloadable"]
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["provider"] == "offline"
    [line] = [line for line in done.stderr.splitlines() if "did not answer" in line]
    assert line.startswith(f"local did not answer: could not load {missing!r}")
    assert "Traceback" not in done.stderr
