"""Answering with images: indexed files that changed since indexing never hang or break an answer."""

import json
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import pytest

from course_utils import Cascade, CourseError, ImageIndex, ImageRAG, LLMResponse, Product, render_catalog
from course_utils.cli import main
from course_utils.indexing import build_index
from course_utils.llm import encode_image


class RecordingLLM:
    """Records the prompt and the images it is sent; takes at most ``max_images``, as the cascade does."""

    def __init__(self, max_images=8):
        self.max_images = max_images
        self.calls = []

    def generate(self, prompt, system_prompt=None):
        return LLMResponse("text answer", "Fake", "fake")

    def generate_multimodal(self, prompt, images, system_prompt=None):
        images = list(images)
        assert len(images) <= self.max_images
        self.calls.append((prompt, images))
        return LLMResponse("answer", "Fake", "fake")


@contextmanager
def deadline(seconds):
    """Fail instead of hanging: a blocking open() of a FIFO is interrupted by the alarm."""

    def expired(signum, frame):
        raise AssertionError(f"still blocked after {seconds} s")  # not an OSError: nothing may swallow it

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def index_with(tiny_index, row, path):
    """The tiny index with one row's image path replaced."""
    paths = list(tiny_index.paths)
    paths[row] = str(path)
    return ImageIndex(tiny_index.embeddings, tiny_index.products, paths, tiny_index.model_id)


def test_a_missing_image_is_skipped_with_a_note(tiny_index, tiny_embedder, tmp_path):
    rag = ImageRAG(tiny_index, tiny_embedder, RecordingLLM())
    first = rag.retrieve("red circle", k=3).hits
    gone = first[1]
    index = index_with(tiny_index, tiny_index.paths.index(gone.path), tmp_path / "deleted.png")
    llm = RecordingLLM()
    result = ImageRAG(index, tiny_embedder, llm).answer("red circle", k=3)
    prompt, images = llm.calls[0]
    assert [h.product.name for h in result.hits] == [h.product.name for h in first]
    assert images == [result.hits[0].path, result.hits[2].path]
    assert "show entries [1], [3]" in prompt and "[2] name: " + gone.product.name in prompt
    assert gone.product.name in result.note and "file not found" in result.note


def test_every_image_present_keeps_the_prompt_as_it_was(tiny_index, tiny_embedder):
    llm = RecordingLLM()
    result = ImageRAG(tiny_index, tiny_embedder, llm).answer("red circle", k=3)
    prompt, images = llm.calls[0]
    assert len(images) == 3 and result.note == ""
    assert "image 1 is entry [1], and so on" in prompt


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_an_image_that_became_a_fifo_does_not_hang_ask(tiny_index, tiny_embedder, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    os.mkfifo(tmp_path / "pipe.png")
    index = index_with(tiny_index, 0, tmp_path / "pipe.png")
    with deadline(10):
        result = ImageRAG(index, tiny_embedder, Cascade()).answer("anything", k=len(index))
    assert result.provider == "offline" and "not a regular file" in result.note


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_encoding_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    with deadline(10), pytest.raises(CourseError, match="not a regular file"):
        encode_image(tmp_path / "pipe.png")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_encoding_a_link_to_dev_zero_is_refused_before_reading(tmp_path):
    """Run apart, with 1 GB of address space: reading /dev/zero to its end would take all memory."""
    os.symlink("/dev/zero", tmp_path / "zero.png")
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))\n"
        "from course_utils.errors import CourseError\n"
        "from course_utils.llm import encode_image\n"
        "try:\n"
        "    encode_image(sys.argv[1])\n"
        "except CourseError as exc:\n"
        "    print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "zero.png")], capture_output=True, text=True, env=env, timeout=60
    )
    assert run.returncode == 0, run.stderr[-500:]
    assert run.stdout.strip() == "zero.png: not a regular file."


def test_a_huge_file_is_refused_from_its_size(tmp_path, monkeypatch):
    from course_utils import images

    path = tmp_path / "big.png"
    path.write_bytes(b"\0" * 2048)
    monkeypatch.setattr(images, "MAX_FILE_BYTES", 1024)
    with pytest.raises(CourseError, match="over the .* limit"):
        encode_image(path)


def test_ask_with_k_above_the_image_limit(tiny_embedder, tmp_path):
    """k=9 on a catalog of 10: the top 8 go as images, all 9 as catalog entries."""
    base = Product("Thing A", "circle", "#E74C3C", "red", "solid", 1.0, "things")
    products = [replace(base, name=f"Thing {chr(65 + i)}", price=float(i + 1)) for i in range(10)]
    paths = render_catalog(products, tmp_path)
    index = build_index(products, paths, tiny_embedder)
    llm = RecordingLLM(max_images=8)
    result = ImageRAG(index, tiny_embedder, llm).answer("Show me things", k=9, plan="none")
    prompt, images = llm.calls[0]
    assert len(result.hits) == 9 and images == [h.path for h in result.hits[:8]]
    assert "[9] name: " in prompt and "show entries [1], [2], [3], [4], [5], [6], [7], [8]," in prompt
    assert "at most 8 images" in result.note


def test_cli_ask_more_than_8_with_a_missing_image(cli_env, capsys, tiny_embedder, tmp_path):
    base = Product("Thing A", "circle", "#E74C3C", "red", "solid", 1.0, "things")
    products = [replace(base, name=f"Thing {chr(65 + i)}", price=float(i + 1)) for i in range(10)]
    paths = render_catalog(products, tmp_path / "catalog")
    build_index(products, paths, tiny_embedder).save(tmp_path / "things.npz")
    paths[0].unlink()
    code = main(["ask", "Show me things", "--index", str(tmp_path / "things.npz"), "-k", "10", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert len(data["results"]) == 10 and data["provider"] == "offline"
    assert "Thing A (file not found)" in data["note"] and "at most 8 images" in data["note"]
    assert np.isfinite([r["similarity"] for r in data["results"]]).all()
