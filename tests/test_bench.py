"""The benchmark runs end to end on the tiny random CLIP and reports sane numbers (no timing assertions)."""

import contextlib
import importlib.util
import io
import json
import math

import pytest

from course_utils import embeddings
from course_utils.bench import embedding as bench
from course_utils.bench import report
from course_utils.cli import main
from course_utils.indexing import workers as decoding

HAS_FAISS = importlib.util.find_spec("faiss") is not None


@pytest.fixture(scope="module")
def bench_run(tiny_clip_dir, tmp_path_factory):
    """One small benchmark run: tiny model, 12 images, two small index sizes, FAISS IVF if installed."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    argv = ["bench", "--model", str(tiny_clip_dir), "--device", "cpu", "--n-images", "12", "--sizes", "500,2000"]
    argv += ["--faiss-method", "ivf", "--batch-size", "4", "--repeat", "2", "--json", "--out", str(out)]
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        mp.setenv("COURSE_CACHE_DIR", str(out.parent / "cache"))
        code = main(argv)
    return code, stdout.getvalue(), stderr.getvalue(), out


def test_bench_json_has_every_figure(bench_run):
    code, stdout, stderr, out = bench_run
    assert code == 0, stderr
    result = json.loads(stdout)
    assert "bench: pipeline" in stderr  # progress goes to stderr, JSON alone to stdout
    assert json.loads(out.read_text()) == result
    required = {
        "device",
        "arch",
        "n_images",
        "naive_per_image_ips",
        "naive_single_call_ips",
        "pipeline_ips",
        "model_only_ips",
        "preprocess_ceiling_ips",
        "reindex_speedup",
        "query_ms",
    }
    if HAS_FAISS:
        required |= {"faiss_query_ms", "faiss_recall_at_10"}
    assert required <= set(result)
    assert result["device"] == "cpu" and result["arch"] == "model" and result["n_images"] == 12
    for key in ("naive_per_image_ips", "naive_single_call_ips", "pipeline_ips", "model_only_ips"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert result["preprocess_ceiling_ips"] > 0 and result["reindex_speedup"] > 0
    # the cache: nothing embedded again, ten new images -> ten embeddings
    assert (result["first_index_embedded"], result["reindex_embedded"], result["reindex_from_cache"]) == (12, 0, 12)
    assert result["added_10_embedded"] == 10
    # the pipeline computes the same vectors as the naive path
    assert result["pipeline_vs_naive_min_cosine"] > 0.9999
    assert set(result["query_ms"]) == {"500", "2000"} and set(result["search_ms"]) == {"500", "2000"}
    for size, ms in result["query_ms"].items():
        assert ms >= result["search_ms"][size] > 0
    if HAS_FAISS:
        assert set(result["faiss_recall_at_10"]) == {"500", "2000"}
        assert all(0.0 <= r <= 1.0 for r in result["faiss_recall_at_10"].values())
        assert "ivf" in result["faiss_method"]["2000"]
    assert str(result["model_only_batch"]) in result["model_only_by_batch"]
    # the preprocessing ceiling is the best of threads and (where processes can fork) one process per core
    setups = result["preprocess_by_workers"]
    assert result["preprocess_ceiling_ips"] == max(setups.values()) and result["preprocess_ceiling_workers"] in setups
    assert f"{result['cpu_cores']} processes" in setups or not decoding.can_fork()
    assert result["parallel"] == "threads"  # a CPU's model is the slow part
    assert result["shared_memory_free_mb"] == pytest.approx(decoding.shared_memory_free() / 2**20, abs=64)
    plot = out.with_suffix(".png")
    assert result["plot"] == str(plot) and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table_names_every_method(bench_run):
    table = report.format_table(json.loads(bench_run[1]))
    for words in (
        "naive per-image loop",
        "naive single call",
        "pipeline",
        "model-only ceiling",
        "re-index",
        "recall@10",
    ):
        assert words in table


@pytest.mark.parametrize(
    "argv, message",
    [
        (["bench", "--sizes", "1000,lots"], "--sizes"),
        (["bench", "--sizes", "5"], "at least 10"),
        (["bench", "--n-images", "1", "--model", "unused"], "at least 2"),
        (["bench", "--repeat", "0", "--model", "unused"], "--repeat"),
    ],
)
def test_bench_argument_errors(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_mini_arch_without_the_bundled_model_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(embeddings, "BUNDLED_MODEL_DIR", tmp_path / "missing")
    monkeypatch.setattr(bench, "BUNDLED_MODEL_DIR", tmp_path / "missing")
    assert main(["bench", "--arch", "mini", "--n-images", "4"]) == 2
    assert "--arch vit-b-32" in capsys.readouterr().err
