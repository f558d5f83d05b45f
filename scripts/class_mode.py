#!/usr/bin/env python3
"""Measure the class mode: notebook 05's comparison cell, run twice, against a free tier's quota.

    python scripts/class_mode.py            # print the figures
    python scripts/class_mode.py --write    # and keep them in docs/benchmarks/class_mode.json

A class runs the comparison cell (five seed questions, each asked with and without RAG: ten
calls) on thirty free-tier keys at once. Each key has its own quota, so one student's figures are
every student's. This script plays one student: the course's real cascade (``openai`` SDK and
all) against a local OpenAI-compatible server (``tests/llm_servers.py``) that answers like a model
and allows 10 requests a minute per key, answering 429 with ``Retry-After`` beyond that. It runs
the cell twice in one kernel, in three set-ups: the defaults (cache on), ``COURSE_LLM_CACHE=0``,
and ``OPENAI_RPM=10`` with the cache off. For each run it counts the requests, the 429s, the
waits (and their seconds) and the cache hits.

Time is simulated: the cascade and the server share a clock that advances only when the cascade
waits, so the seconds are what a student would wait, and the run itself takes seconds. A real
model adds its own answer time to each call; that is not simulated (a slower model fills part of
the pacing interval by itself). The questions are read from notebook 05, so this measures what
the notebook asks.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from llm_servers import FakeClock, FakeLLMServer, closed_port  # noqa: E402

from course_utils import CourseError, ImageRAG, catalog_index, config, load_clip  # noqa: E402
from course_utils.embeddings import BUNDLED_MODEL_DIR  # noqa: E402
from course_utils.llm import Cascade  # noqa: E402

KEPT = ROOT / "docs" / "benchmarks" / "class_mode.json"
NOTEBOOK = ROOT / "notebooks" / "05_image_rag_pipeline.ipynb"
QUOTA_RPM = 10  # a free tier's requests a minute per key
SETUPS = {
    "defaults (response cache on)": {},
    "COURSE_LLM_CACHE=0": {"COURSE_LLM_CACHE": "0"},
    "COURSE_LLM_CACHE=0, OPENAI_RPM=10": {"COURSE_LLM_CACHE": "0", "OPENAI_RPM": str(QUOTA_RPM)},
}


def seed_questions() -> list[str]:
    """The ``SEED_QUESTIONS`` list of notebook 05's comparison cell."""
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    source = next("".join(c["source"]) for c in cells if c.get("id") == "05-14")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "SEED_QUESTIONS":
            return ast.literal_eval(node.value)
    raise SystemExit("notebook 05's comparison cell has no SEED_QUESTIONS")


def comparison_cell(rag: ImageRAG, questions: list[str]) -> tuple[list, int]:
    """What the cell does: ``rag.compare(q, k=3)`` for each question, a failed row kept as a failure."""
    results, failed = [], 0
    for question in questions:
        try:
            results.extend(rag.compare(question, k=3))
        except CourseError:
            failed += 1
    return results, failed


def measure_setup(settings: dict[str, str], embedder, index, questions: list[str], cache_dir: Path) -> list[dict]:
    clock = FakeClock(start=0.0)
    server = FakeLLMServer("openai", rpm=QUOTA_RPM, clock=clock).behave("model").start()
    env = {
        "COURSE_LLM_PROVIDERS": "openai",
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": "sk-class-mode-student-key-01",
        "COURSE_CACHE_DIR": str(cache_dir),
        "OLLAMA_HOST": f"http://127.0.0.1:{closed_port()}",
        "NO_PROXY": "127.0.0.1,localhost",
        **settings,
    }
    saved = dict(os.environ)
    os.environ.update(env)
    for name in ("COURSE_OFFLINE", "OPENAI_RPM", "COURSE_LLM_CACHE", "COURSE_LLM_MAX_WAIT"):
        if name not in env:
            os.environ.pop(name, None)
    runs = []
    try:
        rag = ImageRAG(index, embedder, Cascade(clock=clock))
        for run in (1, 2):
            requests, limited, sleeps, started = (
                len(server.chat_requests),
                server.rate_limited,
                len(clock.sleeps),
                clock.now(),
            )
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                results, failed = comparison_cell(rag, questions)
            waits = clock.sleeps[sleeps:]
            lines = printed.getvalue().splitlines()
            runs.append(
                {
                    "run": run,
                    "calls": 2 * len(questions),
                    "requests": len(server.chat_requests) - requests,
                    "answered_429": server.rate_limited - limited,
                    "cache_hits": sum(result.cached for result in results),
                    "waits": len(waits),
                    "waited_s": round(sum(waits), 1),
                    "rate_limit_waits": sum("rate limited" in line for line in lines),
                    "pacing_waits": sum("to stay under" in line for line in lines),
                    "failed_rows": failed,
                    "simulated_s": round(clock.now() - started, 1),
                }
            )
    finally:
        server.stop()
        os.environ.clear()
        os.environ.update(saved)
    return runs


def measure() -> dict:
    """Every set-up's two runs, as kept in docs/benchmarks/class_mode.json."""
    questions = seed_questions()
    saved = os.environ.get("COURSE_CACHE_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["COURSE_CACHE_DIR"] = str(Path(tmp) / "catalog")
        try:
            embedder = load_clip(str(BUNDLED_MODEL_DIR), device="cpu")
            index = catalog_index(embedder)
        finally:
            os.environ.pop("COURSE_CACHE_DIR")
            if saved is not None:
                os.environ["COURSE_CACHE_DIR"] = saved
        setups = []
        for i, (name, settings) in enumerate(SETUPS.items()):
            runs = measure_setup(settings, embedder, index, questions, Path(tmp) / f"answers-{i}")
            setups.append({"setup": name, "settings": settings, "runs": runs})
    return {
        "what": "notebook 05's comparison cell (rag.compare over its seed questions, k=3), run twice in one kernel",
        "server": f"local OpenAI-compatible server playing a model, {QUOTA_RPM} requests a minute per key, "
        "429 with Retry-After beyond",
        "clock": "simulated: waits are the seconds a student would wait; a model's own answer time is not included",
        "command": "python scripts/class_mode.py --write",
        "questions": questions,
        "COURSE_LLM_MAX_WAIT": config.DEFAULT_LLM_MAX_WAIT,
        "setups": setups,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"keep the figures in {KEPT.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    figures = measure()
    text = json.dumps(figures, indent=2) + "\n"
    print(text, end="")
    if args.write:
        KEPT.parent.mkdir(parents=True, exist_ok=True)
        KEPT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
