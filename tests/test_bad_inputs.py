"""Reliability: a corpus of bad command-line inputs, each answered with one line on stderr and exit 2.

Bad files, paths, numbers and settings a careless user (or an attacker) hands the CLI. Each case
builds what it needs inside tmp_path and says which words the message must contain; commands that
would first work for minutes must refuse before that work starts (``forbid`` names what may not run).
"""

import json
import os
import sys

import numpy as np
import pytest

from course_utils.catalog import default_catalog, render_catalog
from course_utils.cli import main
from course_utils.index import ImageIndex

PRODUCT = {"name": "A", "shape": "circle", "color": "#E74C3C", "color_name": "red", "pattern": "solid"}
HAS_PROC = sys.platform.startswith("linux") and os.path.isdir("/proc/self")


def catalog_json(price_literal):
    fields = json.dumps(PRODUCT)[:-1]
    return f'[{fields}, "price": {price_literal}, "category": "x"}}]'


def file_with(name, data):
    def make(tmp):
        path = tmp / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        return str(path)

    return make


def a_file(tmp):
    (tmp / "afile").write_text("I am a file, not a folder\n")
    return str(tmp / "afile")


def rendered_catalog(tmp):
    render_catalog(default_catalog(), tmp / "cat")
    return str(tmp / "cat")


def nested_manifest_index(tmp):
    path = tmp / "nested.npz"
    np.savez(path, embeddings=np.eye(1, 16, dtype=np.float32), manifest=np.array("[" * 200_000))
    return str(path)


def tiny_model_id():
    """The id of the model the CLI uses here (cli_env points COURSE_CLIP_MODEL at the tiny CLIP)."""
    from course_utils.embeddings import load_clip

    return load_clip(os.environ["COURSE_CLIP_MODEL"], device="cpu").model_id


def empty_index(tmp):
    return str(ImageIndex(np.zeros((0, 16), np.float32), [], [], tiny_model_id()).save(tmp / "empty.npz"))


def bad_model_folder(tmp):
    folder = tmp / "bad-model"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "clip", "projection_dim": "abc"}')
    return str(folder)


def index_made_by(model):
    def make(tmp):
        products = default_catalog()[:2]
        index = ImageIndex(np.eye(2, 16, dtype=np.float32), products, ["a.png", "b.png"], model(tmp))
        return str(index.save(tmp / "by-bad-model.npz"))

    return make


# name -> (argv, env, words the message must contain, functions that must not run, skip reason or None)
# argv items and env values may be callables that build a file in tmp_path and return its path.
CASES = {
    # catalog and eval files
    "catalog_price_400_digits": (
        ["catalog", "--catalog", file_with("c.json", catalog_json("1" + "0" * 400)), "--out", "out"],
        {},
        ["price"],
    ),
    "catalog_price_5000_digits": (
        ["catalog", "--catalog", file_with("c.json", catalog_json("1" + "0" * 5000)), "--out", "out"],
        {},
        ["not valid JSON"],
    ),
    "catalog_nested_200000": (["catalog", "--catalog", file_with("c.json", "[" * 200_000)], {}, ["nested too deeply"]),
    "catalog_not_utf8": (["catalog", "--catalog", file_with("c.json", b'[{"name": "\xff"}]')], {}, ["UTF-8"]),
    "eval_nested_200000": (
        ["eval", "--queries", file_with("q.jsonl", "[" * 200_000 + "\n")],
        {},
        ["nested too deeply"],
    ),
    "eval_int_5000_digits": (
        ["eval", "--queries", file_with("q.jsonl", '{"query": "x", "relevant": [], "n": 1' + "0" * 5000 + "}\n")],
        {},
        ["not valid JSON"],
    ),
    "index_manifest_nested": (["search", "red", "--index", nested_manifest_index], {}, ["not a valid index"]),
    # the query
    "query_not_utf8": (["search", "red \udcff"], {}, ["UTF-8"]),
    # output folders
    "catalog_out_into_a_file": (["catalog", "--out", lambda t: a_file(t) + "/sub"], {}, ["--out", "afile"]),
    "index_out_into_a_file": (
        ["index", rendered_catalog, "--out", lambda t: a_file(t) + "/i.npz"],
        {},
        ["--out"],
        ["course_utils.indexing.index_files"],
    ),
    "bench_out_into_a_file": (
        ["bench", "--out", lambda t: a_file(t) + "/bench.json"],
        {},
        ["--out"],
        ["course_utils.bench.run_bench"],
    ),
    "train_out_into_a_file": (
        ["train-mini-clip", "--out", lambda t: a_file(t) + "/model"],
        {},
        ["--out"],
        ["course_utils.mini_clip.train.train_mini_clip"],
    ),
    "catalog_out_under_proc": (["catalog", "--out", "/proc/course-x"], {}, ["--out"], [], HAS_PROC),
    "index_out_under_proc": (
        ["index", rendered_catalog, "--out", "/proc/course-x.npz"],
        {},
        ["--out"],
        ["course_utils.indexing.index_files"],
        HAS_PROC,
    ),
    "bench_out_under_proc": (
        ["bench", "--out", "/proc/course-x/bench.json"],
        {},
        ["--out"],
        ["course_utils.bench.run_bench"],
        HAS_PROC,
    ),
    "train_out_under_proc": (
        ["train-mini-clip", "--out", "/proc/course-x"],
        {},
        ["--out"],
        ["course_utils.mini_clip.train.train_mini_clip"],
        HAS_PROC,
    ),
    # the cache folder
    "cache_dir_is_a_file_search": (["search", "red"], {"COURSE_CACHE_DIR": a_file}, ["COURSE_CACHE_DIR"]),
    "cache_dir_is_a_file_index": (
        ["index", rendered_catalog, "--out", "i.npz"],
        {"COURSE_CACHE_DIR": a_file},
        ["COURSE_CACHE_DIR"],
    ),
    "cache_dir_is_a_file_bench": (
        ["bench", "--n-images", "2", "--sizes", "10"],
        {"COURSE_CACHE_DIR": a_file},
        ["COURSE_CACHE_DIR"],
        ["course_utils.bench.run_bench"],
    ),
    # devices and stores
    "device_foo": (["search", "red", "--device", "foo"], {}, ["'foo'", "cpu"]),
    "device_meta": (["search", "red", "--device", "meta"], {}, ["'meta'"]),
    "device_cuda_99": (["search", "red", "--device", "cuda:99"], {}, ["'cuda:99'"]),
    "store_chroma_under_proc": (
        ["index", "--store", "chroma:/proc/course-x"],
        {},
        ["Chroma", "/proc/course-x"],
        [],
        HAS_PROC,
    ),
    # numbers
    "bench_sizes_1e11": (
        ["bench", "--sizes", "100000000000"],
        {},
        ["memory"],
        ["course_utils.bench.embedding.render_images"],
    ),
    "index_batch_size_0": (
        ["index", rendered_catalog, "--batch-size", "0"],
        {},
        ["--batch-size"],
        ["course_utils.indexing.index_files"],
    ),
    "index_workers_0": (["index", rendered_catalog, "--workers", "0"], {}, ["--workers"]),
    "bench_batch_size_0": (["bench", "--batch-size", "0"], {}, ["--batch-size"], ["course_utils.bench.run_bench"]),
    "train_steps_0": (
        ["train-mini-clip", "--out", "m", "--steps", "0"],
        {},
        ["--steps"],
        ["course_utils.mini_clip.train.train_mini_clip"],
    ),
    # indexes and models
    "index_with_zero_rows": (["search", "red", "--index", empty_index], {}, ["no images"]),
    "model_folder_with_a_bad_config": (
        ["search", "red", "--model", bad_model_folder],
        {},
        ["Cannot load", "bad-model"],
    ),
    "index_made_by_a_bad_model_folder": (
        ["search", "red", "--index", index_made_by(bad_model_folder)],
        {},
        ["Cannot load", "bad-model"],
    ),
}
if sys.platform != "darwin":
    CASES["device_mps_unavailable"] = (["search", "red", "--device", "mps"], {}, ["'mps'"])


def test_corpus_size():
    """The number of bad command-line inputs this file covers (reported in the engineering notes)."""
    assert len(CASES) >= 30


def _resolve(value, tmp):
    return value(tmp) if callable(value) else value


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_and_exit_2(name, cli_env, tmp_path, monkeypatch, capsys):
    argv, env, words, *rest = CASES[name]
    forbid = rest[0] if rest else []
    if len(rest) > 1 and not rest[1]:
        pytest.skip("needs Linux /proc")
    if name == "device_mps_unavailable":
        import torch

        if torch.backends.mps.is_available():
            pytest.skip("this machine has MPS")
    if name == "device_cuda_99":
        import torch

        if torch.cuda.device_count() > 99:
            pytest.skip("this machine has 100 GPUs")
    if name == "store_chroma_under_proc":
        pytest.importorskip("chromadb")
    monkeypatch.chdir(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, _resolve(value, tmp_path))
    for target in forbid:
        module, attr = target.rsplit(".", 1)

        def refuse(*args, _target=target, **kwargs):
            raise AssertionError(f"{_target} ran: the bad input should have been refused before")

        monkeypatch.setattr(f"{module}.{attr}", refuse)
    code = main([_resolve(arg, tmp_path) for arg in argv])
    out, err = capsys.readouterr()
    assert code == 2, (code, err[-800:])
    # (a model loaded for the first time may draw a progress bar above the error)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert "Traceback" not in err and len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    for word in words:
        assert word in errors[0], (word, err)


def test_index_out_an_existing_folder_writes_inside_it(cli_env, capsys, tmp_path):
    folder = tmp_path / "indexes"
    folder.mkdir()
    assert main(["index", rendered_catalog(tmp_path), "--out", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["index"] == str(folder / "index.npz")
    assert (folder / "index.npz").is_file() and not (tmp_path / "indexes.npz").exists()


def nan_model(tiny_clip_dir, out):
    """The tiny model with a text projection of NaN: every query vector, and so every similarity, is NaN."""
    import torch
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(tiny_clip_dir)
    with torch.no_grad():
        model.text_projection.weight.fill_(float("nan"))
    model.save_pretrained(out)
    CLIPProcessor.from_pretrained(tiny_clip_dir).save_pretrained(out)
    return out


def test_json_output_is_valid_json_even_with_nan(cli_env, capsys, tmp_path, tiny_clip_dir):
    model = str(nan_model(tiny_clip_dir, tmp_path / "nan-model"))
    catalog = rendered_catalog(tmp_path)
    assert main(["index", catalog, "--out", str(tmp_path / "i.npz"), "--model", model]) == 0
    capsys.readouterr()
    assert main(["search", "red", "--index", str(tmp_path / "i.npz"), "--model", model, "--json"]) == 0
    out = capsys.readouterr().out

    def strict(constant):
        raise ValueError(f"{constant} is not JSON")

    data = json.loads(out, parse_constant=strict)
    assert [r["similarity"] for r in data["results"]] == [None] * 3


def test_an_index_with_non_finite_vectors_is_refused(cli_env, capsys, tmp_path):
    products = default_catalog()[:2]
    vectors = np.array([[np.nan] * 16, [1.0] + [0.0] * 15], dtype=np.float32)
    path = ImageIndex(vectors, products, ["a.png", "b.png"], tiny_model_id()).save(tmp_path / "nan.npz")
    code = main(["search", "red", "--index", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and "not finite" in err and len(err.strip().splitlines()) == 1
