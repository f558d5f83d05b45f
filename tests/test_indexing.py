"""The indexing pipeline: same vectors as the plain loop, the on-disk cache, folder indexes, float16 and FAISS."""

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPImageProcessor

from course_utils.catalog import Product, default_catalog
from course_utils.cli import main
from course_utils.embeddings import features_to_array, l2_normalize
from course_utils.errors import CourseError
from course_utils.images import open_image
from course_utils.index import ImageIndex
from course_utils.indexing import EmbeddingCache, PixelRecipe, embed_files, index_folder
from course_utils.indexing import cache as cache_module
from course_utils.indexing import workers as decoding
from course_utils.indexing.transforms import image_processor_of


def plain_loop(embedder, items):
    """The reference: the processor and the model, one image at a time."""
    rows = []
    for item in items:
        pixels = embedder.processor(images=[open_image(item)], return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            rows.append(features_to_array(embedder.model.get_image_features(pixel_values=pixels)))
    return np.concatenate(rows)


@contextlib.contextmanager
def ctrl_c_at_batch(embedder, n):
    """The model is interrupted, as by Ctrl-C, in its n-th forward pass: the block must stop with it."""
    real = embedder.model.get_image_features
    calls = []

    def forward(**kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(**kwargs)

    with pytest.MonkeyPatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(embedder.model, "get_image_features", forward)
        yield


@pytest.fixture
def photos(tmp_path, catalog_dir):
    """A copy of the rendered catalog without its catalog.json: a folder of 8 'photos'."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for png in sorted(catalog_dir.glob("*.png")):
        shutil.copy(png, folder / png.name)
    return folder


@pytest.mark.parametrize(
    "processor",
    [
        CLIPImageProcessor(),
        CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        CLIPImageProcessor(size={"height": 50, "width": 40}, crop_size={"height": 45, "width": 45}),
        CLIPImageProcessor(do_resize=False, crop_size={"height": 64, "width": 64}),
    ],
    ids=["vit-224", "tiny-32", "fixed-hw-padded-crop", "no-resize-padded"],
)
@pytest.mark.parametrize("size", [(256, 256), (300, 200), (199, 401), (33, 31), (17, 90)])
def test_pixel_recipe_matches_the_processor(processor, size):
    pixels = np.random.default_rng(sum(size)).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    recipe = PixelRecipe.from_processor(processor)
    assert recipe is not None
    expected = processor(images=[image], return_tensors="pt")["pixel_values"]
    got = recipe.to_pixel_values(torch.from_numpy(recipe.prepare(image).copy())[None])
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_recipe_declines_what_it_cannot_reproduce():
    assert PixelRecipe.from_processor(CLIPImageProcessor(do_center_crop=False)) is None  # sizes would vary
    assert PixelRecipe.from_processor(object()) is None


@pytest.mark.parametrize("preprocess", ["fast", "processor"])
def test_pipeline_gives_the_plain_loops_vectors(tiny_embedder, catalog_dir, preprocess):
    paths = sorted(catalog_dir.glob("*.png"))
    result = embed_files(tiny_embedder, paths, batch_size=3, workers=2, preprocess=preprocess)
    assert result.kept == list(range(8)) and result.skipped == [] and result.embedded == 8
    assert result.settings["preprocess"] == ("recipe" if preprocess == "fast" else "processor")
    np.testing.assert_allclose(result.vectors, plain_loop(tiny_embedder, paths), atol=1e-5)


@pytest.mark.parametrize("parallel", ["threads", "processes"])
def test_batch_size_and_workers_do_not_change_the_vectors(tiny_embedder, catalog_dir, parallel):
    paths = sorted(catalog_dir.glob("*.png")) * 3
    one = embed_files(tiny_embedder, paths, batch_size=1, workers=1, prefetch_batches=1, parallel=parallel)
    many = embed_files(tiny_embedder, paths, batch_size=5, workers=2, parallel=parallel)
    assert many.settings["parallel"] == parallel and many.settings["workers"] == 2
    np.testing.assert_allclose(one.vectors, many.vectors, atol=1e-5)
    np.testing.assert_allclose(many.vectors[:8], many.vectors[8:16], atol=1e-6)  # order kept
    np.testing.assert_allclose(many.vectors[:8], plain_loop(tiny_embedder, paths[:8]), atol=1e-5)


def test_worker_processes_are_chosen_next_to_a_gpu_only(monkeypatch, catalog_dir):
    paths = sorted(catalog_dir.glob("*.png"))
    monkeypatch.setattr(decoding, "cpu_cores", lambda: 16)
    monkeypatch.setattr(decoding, "shared_memory_free", lambda: 2**30)
    assert decoding.resolve_parallel("auto", "cuda:0", True, paths) == "processes"
    assert decoding.default_workers("cuda:0", "processes") == 16
    assert decoding.default_workers("cuda:0", "threads") == decoding.MAX_THREADS
    assert decoding.default_workers("cpu") == 8
    # a CPU's model is the slow part; PIL images in memory and the processor's own path stay in threads
    assert decoding.resolve_parallel("auto", "cpu", True, paths) == "threads"
    assert decoding.resolve_parallel("auto", "cuda:0", True, [*paths, Image.open(paths[0])]) == "threads"
    assert decoding.resolve_parallel("auto", "cuda:0", False, paths) == "threads"
    monkeypatch.setattr(decoding, "shared_memory_free", lambda: 64 * 2**20)  # a container's default /dev/shm
    assert decoding.resolve_parallel("auto", "cuda:0", True, paths) == "threads"
    monkeypatch.setattr(decoding, "shared_memory_free", lambda: 2**30)
    monkeypatch.setattr(decoding, "cpu_cores", lambda: 2)  # a Colab runtime: one core could not feed a GPU alone
    assert decoding.resolve_parallel("auto", "cuda:0", True, paths) == "threads"


def test_cache_hits_come_back_from_worker_processes(tiny_embedder, photos, tmp_path):
    paths = sorted(photos.glob("*.png"))
    first = embed_files(tiny_embedder, paths, cache=tmp_path / "c", workers=2, parallel="processes")
    again = embed_files(tiny_embedder, paths, cache=tmp_path / "c", workers=2, parallel="processes")
    assert (first.embedded, first.cached, again.embedded, again.cached) == (8, 0, 0, 8)
    np.testing.assert_array_equal(again.vectors, first.vectors)


def test_worker_processes_are_reused_and_replaced_when_one_died(tiny_embedder, catalog_dir):
    paths = sorted(catalog_dir.glob("*.png"))
    embed_files(tiny_embedder, paths, workers=2, parallel="processes")
    pids = [process.pid for process in decoding.worker_processes(2)]
    embed_files(tiny_embedder, paths, workers=2, parallel="processes")
    assert [process.pid for process in decoding.worker_processes(2)] == pids  # started once
    dead = decoding.worker_processes(2)[0]
    os.kill(dead.pid, signal.SIGKILL)  # as the out-of-memory killer would, between two calls
    # until it is reaped the dead worker is a zombie; by then this process has had its SIGCHLD, and
    # nothing may be raised here, in code that is not the pipeline's
    while Path(f"/proc/{dead.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.01)
    time.sleep(0.05)
    result = embed_files(tiny_embedder, paths, workers=2, parallel="processes")
    assert result.kept == list(range(8)) and decoding.worker_processes(2)[0].pid != pids[0]


def test_a_worker_process_that_dies_mid_call_stops_the_call_with_a_clear_message(tiny_embedder, catalog_dir):
    paths = sorted(catalog_dir.glob("*.png"))
    job = decoding.DecodeJob(PixelRecipe.from_processor(image_processor_of(tiny_embedder)), None, None, True)
    workers = decoding.worker_processes(2)
    prepared = decoding.prepare(job, paths * 100, 2, 64, "processes")
    next(prepared)
    for process in workers:  # both: what is still to come can never arrive
        process.kill()
    with pytest.raises(CourseError, match="worker process stopped"):
        for _ in prepared:
            pass
    result = embed_files(tiny_embedder, paths, workers=2, parallel="processes")  # started afresh
    np.testing.assert_allclose(result.vectors, plain_loop(tiny_embedder, paths), atol=1e-5)


def test_two_threads_take_turns_with_the_worker_processes(tiny_embedder, catalog_dir):
    paths = sorted(catalog_dir.glob("*.png"))
    recipe = PixelRecipe.from_processor(image_processor_of(tiny_embedder))
    expected = {path: recipe.prepare(open_image(path)) for path in paths}
    job = decoding.DecodeJob(recipe, None, None, True)
    first_is_running = threading.Event()

    def pixels_match(items, pause):
        matches = []
        for n, (_, item, _, pixels, _) in enumerate(decoding.prepare(job, items, 2, 64, "processes")):
            matches.append(np.array_equal(pixels, expected[item]))
            if n == 0 and pause:  # the second run starts while this one is half done
                first_is_running.set()
                time.sleep(0.5)
        return matches

    with ThreadPoolExecutor(2) as threads:
        first = threads.submit(pixels_match, paths * 20, True)
        first_is_running.wait(30)
        second = threads.submit(pixels_match, paths[::-1] * 20, False)
        assert all(first.result()) and all(second.result())


def test_worker_processes_hold_no_copy_of_the_callers_pipes(tiny_embedder, catalog_dir):
    decoding.stop_worker_processes()  # the workers must start while the pipe is open
    read_end, write_end = os.pipe()  # like a pipe to a program that waits for its end of file
    try:
        embed_files(tiny_embedder, sorted(catalog_dir.glob("*.png")), workers=2, parallel="processes")
        os.close(write_end)
        ready, _, _ = select.select([read_end], [], [], 5)
        assert ready and os.read(read_end, 1) == b"", "a worker process still holds the pipe's write end"
    finally:
        os.close(read_end)


def test_worker_processes_end_with_a_killed_parent(tiny_clip_dir, catalog_dir):
    script = (
        "import sys; from course_utils import indexing; from course_utils.indexing import workers; from course_utils.embeddings import load_clip;"
        "import glob; e = load_clip(sys.argv[1], device='cpu');"
        "indexing.embed_files(e, sorted(glob.glob(sys.argv[2] + '/*.png')), workers=2, parallel='processes');"
        "print(*[p.pid for p in workers.worker_processes(2)], flush=True); sys.stdin.read()"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tiny_clip_dir), str(catalog_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        workers = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(workers) == 2 and all(Path(f"/proc/{pid}").exists() for pid in workers)
    finally:
        parent.kill()  # as when a notebook's kernel is killed
        parent.wait()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_an_interrupted_run_leaves_no_stale_work_in_the_worker_processes(tiny_embedder, catalog_dir):
    paths = sorted(catalog_dir.glob("*.png"))
    with ctrl_c_at_batch(tiny_embedder, 2):
        embed_files(tiny_embedder, paths * 8, batch_size=4, workers=2, parallel="processes")
    # chunks still queued from the interrupted run would come back as this run's results
    result = embed_files(tiny_embedder, paths[::-1], batch_size=4, workers=2, parallel="processes")
    np.testing.assert_allclose(result.vectors, plain_loop(tiny_embedder, paths[::-1]), atol=1e-5)


def test_each_call_removes_the_job_it_left_for_the_worker_processes(tiny_embedder, catalog_dir, tmp_path, monkeypatch):
    paths = sorted(catalog_dir.glob("*.png"))
    monkeypatch.setattr(decoding, "job_folder", lambda: tmp_path)
    job = decoding.DecodeJob(PixelRecipe.from_processor(image_processor_of(tiny_embedder)), None, None, True)
    prepared = decoding.prepare(job, paths * 4, 2, 64, "processes")
    next(prepared)
    assert [p.name.startswith(decoding.JOB_FILE_PREFIX) for p in tmp_path.iterdir()] == [True]  # one job, in a file
    prepared.close()  # the consumer stops half-way, as on Ctrl-C
    assert list(tmp_path.iterdir()) == []
    embed_files(tiny_embedder, paths, workers=2, parallel="processes")
    with ctrl_c_at_batch(tiny_embedder, 1):
        embed_files(tiny_embedder, paths * 4, batch_size=4, workers=2, parallel="processes")
    assert list(tmp_path.iterdir()) == []
    # a file left by a process killed in the middle of a call goes when the workers next start
    orphan = tmp_path / f"{decoding.JOB_FILE_PREFIX}{2**22 + 1}-0"  # above Linux's largest pid
    orphan.write_bytes(b"")
    decoding.stop_worker_processes()
    embed_files(tiny_embedder, paths, workers=2, parallel="processes")
    assert list(tmp_path.iterdir()) == []


def test_pil_images_and_paths_mix(tiny_embedder, catalog_dir):
    paths = sorted(catalog_dir.glob("*.png"))[:3]
    mixed = [paths[0], Image.open(paths[1]), str(paths[2])]
    np.testing.assert_allclose(embed_files(tiny_embedder, mixed).vectors, plain_loop(tiny_embedder, paths), atol=1e-5)


def test_embedder_raises_on_a_bad_file_but_pipeline_skips_it(tiny_embedder, catalog_dir, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not a picture")
    good = sorted(catalog_dir.glob("*.png"))[:2]
    with pytest.raises(CourseError, match="bad.png: not an image"):
        tiny_embedder.embed_images([good[0], bad])
    result = embed_files(tiny_embedder, [good[0], bad, good[1]])
    assert result.kept == [0, 2] and result.vectors.shape == (2, tiny_embedder.dim)
    assert result.skipped == [{"path": str(bad), "reason": "not an image (Pillow cannot identify the file format)"}]


def test_progress_bar_reports_images_per_second(tiny_embedder, catalog_dir, capsys):
    embed_files(tiny_embedder, sorted(catalog_dir.glob("*.png")), progress=True)
    err = capsys.readouterr().err
    assert "Embedding images" in err and "img/s" in err


def test_bad_settings_are_user_errors(tiny_embedder, catalog_dir):
    paths = sorted(catalog_dir.glob("*.png"))[:1]
    for kwargs, message in [
        ({"batch_size": -1}, "batch_size"),
        ({"on_error": "ignore"}, "on_error"),
        ({"precision": "fp8"}, "precision"),
        ({"preprocess": "gpu"}, "preprocess"),
        ({"workers": -2}, "workers"),
        ({"parallel": "gpu"}, "parallel"),
        ({"parallel": "processes", "preprocess": "processor"}, "preprocess='fast'"),
    ]:
        with pytest.raises(CourseError, match=message):
            embed_files(tiny_embedder, paths, **kwargs)


# --------------------------------------------------------------------------- the cache


def test_reindexing_embeds_only_new_files(tiny_embedder, photos, tmp_path):
    cache = tmp_path / "cache"
    first = embed_files(tiny_embedder, sorted(photos.glob("*.png")), cache=cache)
    assert (first.embedded, first.cached) == (8, 0)
    again = embed_files(tiny_embedder, sorted(photos.glob("*.png")), cache=cache)
    assert (again.embedded, again.cached) == (0, 8)
    np.testing.assert_array_equal(again.vectors, first.vectors)
    # two new photos, one renamed: only the new content is embedded
    Image.new("RGB", (60, 40), (10, 200, 30)).save(photos / "new1.png")
    Image.new("RGB", (40, 60), (200, 10, 30)).save(photos / "new2.png")
    (photos / "widget_a.png").rename(photos / "renamed.png")
    grown = embed_files(tiny_embedder, sorted(photos.glob("*.png")), cache=cache)
    assert (grown.embedded, grown.cached) == (2, 8)


def test_cache_is_per_model_and_preprocessing(tiny_embedder, photos, tmp_path, monkeypatch):
    paths = sorted(photos.glob("*.png"))
    embed_files(tiny_embedder, paths, cache=tmp_path / "c")
    assert embed_files(tiny_embedder, paths, cache=tmp_path / "c", draft=False).cached == 0  # other settings
    monkeypatch.setattr(tiny_embedder, "model_id", "another-model@123")
    assert embed_files(tiny_embedder, paths, cache=tmp_path / "c").cached == 0  # another model
    folders = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert len(folders) == 3  # two settings of the tiny model, one of the other
    assert folders[0].startswith("another_model_123-") and folders[2].startswith("tiny_clip")  # a readable prefix


@pytest.mark.parametrize(
    "first, second",
    [
        ("org/a-b", "org/a_b"),  # hub ids whose slugs are the same
        ("a-local-model-folder-" + "x" * 70 + "@0123456789ab", "a-local-model-folder-" + "x" * 70 + "@ba9876543210"),
    ],
    ids=["same-slug", "long-folder-name"],
)
def test_two_models_never_share_a_cache(tiny_embedder, photos, tmp_path, monkeypatch, first, second):
    """The cache is keyed by the whole model id: a long folder name once lost its weight hash to a cut."""
    paths = sorted(photos.glob("*.png"))
    monkeypatch.setattr(tiny_embedder, "model_id", first)
    assert embed_files(tiny_embedder, paths, cache=tmp_path / "c").embedded == 8
    monkeypatch.setattr(tiny_embedder, "model_id", second)
    other = embed_files(tiny_embedder, paths, cache=tmp_path / "c")
    assert (other.embedded, other.cached) == (8, 0)
    monkeypatch.setattr(tiny_embedder, "model_id", first)
    assert embed_files(tiny_embedder, paths, cache=tmp_path / "c").cached == 8  # each model finds its own
    assert all(len(folder.name) <= 80 for folder in (tmp_path / "c").iterdir())


@pytest.mark.parametrize(
    "model_ids", [("org/a-b", "org/a_b"), ("m" * 300 + "@1", "m" * 300 + "@2")], ids=["same-slug", "very-long-id"]
)
def test_catalog_indexes_of_two_models_are_two_files(tiny_embedder, tmp_path, monkeypatch, model_ids):
    """Each model's catalog index is built once and then loaded, also when their slugs are alike."""
    from course_utils import workspace

    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    products = default_catalog()[:2]
    builds = []
    real_build = workspace.build_index

    def counting_build(*args, **kwargs):
        builds.append(tiny_embedder.model_id)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(workspace, "build_index", counting_build)
    for model_id in [*model_ids, *model_ids]:
        monkeypatch.setattr(tiny_embedder, "model_id", model_id)
        assert workspace.catalog_index(tiny_embedder, products).model_id == model_id
    assert builds == list(model_ids)  # the second round loads both from disk


def test_cache_survives_a_crash_mid_run(tiny_embedder, photos, tmp_path):
    paths = sorted(photos.glob("*.png"))
    with ctrl_c_at_batch(tiny_embedder, 3):
        embed_files(tiny_embedder, paths, batch_size=3, cache=tmp_path / "cache")
    shards = list((tmp_path / "cache").rglob("*"))
    assert not [p for p in shards if p.name.endswith(".tmp")]  # no half-written file
    rerun = embed_files(tiny_embedder, paths, batch_size=3, cache=tmp_path / "cache")
    assert (rerun.cached, rerun.embedded) == (6, 2)  # the two finished batches were kept
    np.testing.assert_allclose(rerun.vectors, plain_loop(tiny_embedder, paths), atol=1e-5)


def test_damaged_shard_is_ignored_and_shards_are_merged(tmp_path, monkeypatch):
    cache = EmbeddingCache(tmp_path)
    for i in range(5):
        cache.put([f"d{i}"], np.full((1, 4), i, dtype=np.float32))
    (tmp_path / "0-broken.npz").write_bytes(b"PK\x03\x04 not a zip")
    monkeypatch.setattr(cache_module, "MAX_CACHE_SHARDS", 3)
    reopened = EmbeddingCache(tmp_path)
    assert len(reopened) == 5 and reopened.get("d3")[0] == 3
    assert len(list(tmp_path.glob("*.npz"))) == 1  # merged into one shard
    assert len(EmbeddingCache(tmp_path)) == 5


# --------------------------------------------------------------------------- folders and indexes


def test_photo_folder_without_catalog_uses_file_names(tiny_embedder, photos, tmp_path):
    (photos / "holiday").mkdir()
    Image.new("RGB", (80, 50), (30, 30, 220)).save(photos / "holiday" / "Beach day.jpg")
    (photos / ".hidden.png").write_bytes(b"ignored")
    index = index_folder(photos, tiny_embedder, cache=tmp_path / "cache")
    names = [p.name for p in index.products]
    assert names == [
        "gadget_x",
        "gadget_y",
        "gadget_z",
        "Beach day",
        "tool_m",
        "tool_n",
        "widget_a",
        "widget_b",
        "widget_c",
    ]
    assert index.products[3] == Product.from_file_name("Beach day") and index.products[3].price is None
    assert index.skipped == []
    path = index.save(tmp_path / "photos.npz")
    loaded = ImageIndex.load(path)
    assert loaded.products == index.products and loaded.paths == index.paths


def test_catalog_folder_uses_the_catalog(tiny_embedder, catalog_dir, tmp_path):
    index = index_folder(catalog_dir, tiny_embedder, cache=False)
    assert index.products == default_catalog()


def test_catalog_with_a_missing_image_skips_it(tiny_embedder, catalog_dir, tmp_path):
    folder = tmp_path / "cat"
    shutil.copytree(catalog_dir, folder)
    (folder / "tool_m.png").unlink()
    index = index_folder(folder, tiny_embedder, cache=False)
    assert "Tool M" not in [p.name for p in index.products] and len(index) == 7
    assert index.skipped == [{"path": str(folder / "tool_m.png"), "reason": "file not found"}]


def test_a_folder_with_no_usable_image_is_a_clear_error(tiny_embedder, tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(CourseError, match="None of the 1 image"):
        index_folder(tmp_path, tiny_embedder, cache=False)


def test_search_and_ask_work_on_a_photo_index(tiny_embedder, photos, tmp_path):
    from course_utils.rag import ImageRAG
    from course_utils.retrieval import retrieve

    index = index_folder(photos, tiny_embedder, cache=False)
    for question in ("a red circle", "the cheapest product", "anything under $20"):
        found = retrieve(question, index, tiny_embedder, k=3)
        assert all(hit.product.price is None for hit in found)
    result = ImageRAG(index, tiny_embedder).answer("What red things are there?", k=2)
    assert result.used_rag and result.answer
    assert "unknown" in Product.from_file_name("x").metadata_line()


def test_skipped_files_are_saved_with_the_index(tiny_embedder, photos, tmp_path):
    (photos / "empty.png").write_bytes(b"")
    index = index_folder(photos, tiny_embedder, cache=False)
    assert "1 files skipped" in repr(index)
    loaded = ImageIndex.load(index.save(tmp_path / "i.npz"))
    assert loaded.skipped == [{"path": str(photos / "empty.png"), "reason": "empty file"}]


# --------------------------------------------------------------------------- float16 and FAISS


def clustered(n, d=32, clusters=40, seed=0):
    rng = np.random.default_rng(seed)
    centers = l2_normalize(rng.normal(size=(clusters, d)))
    return l2_normalize(centers[rng.integers(0, clusters, n)] + rng.normal(size=(n, d)) / np.sqrt(d))


def make_index(vectors, dtype="float32"):
    n = len(vectors)
    return ImageIndex(
        vectors, [Product.from_file_name(f"p{i}") for i in range(n)], [f"{i}.png" for i in range(n)], "m", dtype=dtype
    )


def test_float16_storage_halves_memory_and_keeps_the_ranking(tmp_path):
    vectors = clustered(2000)
    exact, half = make_index(vectors), make_index(vectors, "float16")
    assert half.embeddings.dtype == np.float16 and half.embeddings.nbytes == exact.embeddings.nbytes // 2
    queries = clustered(20, seed=1)
    for q in queries:
        got, want = half.search(q, 10), exact.search(q, 10)
        assert len(set(r for r, _ in got) & set(r for r, _ in want)) >= 9
        assert abs(got[0][1] - want[0][1]) < 2e-3
    loaded = ImageIndex.load(half.save(tmp_path / "half.npz"))
    assert loaded.dtype == "float16" and loaded.embeddings.dtype == np.float16
    with pytest.raises(CourseError, match="dtype"):
        make_index(vectors, "int8")


def test_faiss_flat_equals_exact_search():
    pytest.importorskip("faiss")
    from course_utils.index import VectorIndex
    from course_utils.store import FaissIndex

    exact = make_index(clustered(500))
    queries = clustered(10, seed=2)
    index = FaissIndex(exact, "flat")
    assert isinstance(index, VectorIndex) and len(index) == 500 and index.products is exact.products
    for q in queries:
        got, want = index.search(q, 5), exact.search(q, 5)
        assert [r for r, _ in got] == [r for r, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)
    assert len(index.search(queries[0], 10_000)) == 500  # k beyond the index: everything, as exact search
    with pytest.raises(CourseError, match="k must be"):
        index.search(queries[0], 0)


def test_faiss_ivf_recall_against_exact_search():
    pytest.importorskip("faiss")
    from course_utils.store.faiss_search import FaissSearch, recall_at_k

    vectors = clustered(6000, clusters=60)
    search = FaissSearch(vectors, method="ivf", nlist=64, nprobe=1)
    queries = clustered(100, clusters=60, seed=3)
    low = recall_at_k(search, vectors, queries, k=10)
    reached = search.tune(vectors, clustered(50, clusters=60, seed=4), k=10, target=0.95)
    high = recall_at_k(search, vectors, queries, k=10)
    assert search.nprobe > 1 and reached >= 0.95
    assert high >= 0.9 and high > low
    from course_utils.store import FaissIndex

    index = FaissIndex(make_index(vectors), "ivf", nlist=64)
    hits = index.search(queries[0], 10)
    assert len(hits) == 10 and hits[0][1] >= hits[-1][1]


def test_faiss_method_is_checked():
    pytest.importorskip("faiss")
    from course_utils.store import FaissIndex

    with pytest.raises(CourseError, match="Unknown FAISS method"):
        FaissIndex(make_index(clustered(50)), "hnsw")


# --------------------------------------------------------------------------- the CLI


def test_cli_index_json_reports_cache_use(cli_env, photos, capsys):
    out = cli_env / "idx.npz"
    assert main(["index", str(photos), "--out", str(out), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert {"indexed", "skipped", "index", "model", "embedded", "cached", "seconds"} <= set(first)
    assert (first["indexed"], first["embedded"], first["cached"], first["skipped"]) == (8, 8, 0, [])
    assert main(["index", str(photos), "--out", str(out), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["embedded"], again["cached"]) == (0, 8)
    assert main(["index", str(photos), "--out", str(out), "--json", "--no-cache"]) == 0
    assert json.loads(capsys.readouterr().out)["embedded"] == 8
    assert main(["search", "red", "--index", str(out), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 3
    assert main(["search", "red", "--index", str(out)]) == 0
    assert "price" in capsys.readouterr().out


def test_cli_prints_a_table_of_skipped_files(cli_env, photos, capsys):
    (photos / "broken.jpg").write_text("hello")
    (photos / "notes.txt").write_text("hello")
    assert main(["index", str(photos), "--out", str(cli_env / "i.npz")]) == 0
    out = capsys.readouterr().out
    assert "Indexed 8 images" in out and "Skipped 2 file(s)" in out
    assert "broken.jpg" in out and "not an image (Pillow cannot identify" in out
    assert "notes.txt" in out and "not an image file type ('.txt')" in out


def test_ctrl_c_mid_run_keeps_the_previous_index(cli_env, photos, capsys, monkeypatch, tiny_embedder):
    out = cli_env / "idx.npz"
    assert main(["index", str(photos), "--out", str(out), "--no-cache"]) == 0
    before = out.read_bytes()
    Image.new("RGB", (50, 50), (0, 0, 0)).save(photos / "extra.png")

    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tiny_embedder.model, "get_image_features", interrupted)
    assert main(["index", str(photos), "--out", str(out), "--no-cache"]) == 130
    assert out.read_bytes() == before
    assert len(ImageIndex.load(out)) == 8
    assert sorted(p.name for p in cli_env.iterdir() if p.suffix in (".npz", ".tmp")) == ["idx.npz"]


def test_cache_key_includes_the_precision(tiny_embedder, photos, tmp_path):
    """bf16 and fp32 embeddings differ: one must never be served as the other from the cache."""
    paths = sorted(photos.glob("*.png"))
    first = embed_files(tiny_embedder, paths, cache=tmp_path / "c", precision="fp32")
    half = embed_files(tiny_embedder, paths, cache=tmp_path / "c", precision="bf16")
    assert (first.embedded, half.cached, half.embedded) == (8, 0, 8)
    assert embed_files(tiny_embedder, paths, cache=tmp_path / "c", precision="fp32").cached == 8
    assert np.abs(first.vectors - half.vectors).max() > 1e-4  # the key matters: the vectors really differ
