"""``--engine ray``: a local Ray with 2 CPUs embeds a folder to the same vectors as the one-machine pipeline.

Ray is an optional extra: these tests skip where it is not installed, except on CI, which installs it.
"""

import json
import os
import shutil

import numpy as np
import pytest

from course_utils.bench.embedding import render_images
from course_utils.cli import main
from course_utils.index import ImageIndex
from course_utils.indexing import embed_files, embed_files_ray, folder_inputs, index_files, ray_available

if not ray_available():
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        raise RuntimeError("CI installs the ray extra: `pip install -e .[test]` should have brought it")
    pytest.skip("Ray is not installed (pip install 'ray[data]')", allow_module_level=True)


@pytest.fixture(scope="module")
def local_ray():
    import ray

    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception as exc:  # Ray gives its node 30 s to start: a busy machine can miss that once
        if "timed out during startup" not in str(exc):
            raise
        ray.shutdown()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """48 catalog-style images, one damaged file and one text file: what a real folder holds."""
    folder = tmp_path_factory.mktemp("ray-folder")
    render_images(48, folder, workers=2)
    (folder / "damaged.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_ray_index_matches_the_local_index(local_ray, photo_folder, tiny_embedder, tmp_path):
    products, paths, skipped = folder_inputs(photo_folder)
    local, local_run = index_files(products, paths, tiny_embedder, skipped=skipped, batch_size=8, workers=2)
    cache = tmp_path / "cache"
    index, run = index_files(
        products, paths, tiny_embedder, skipped=skipped, engine="ray", batch_size=8, actors=2, cache=cache
    )
    assert len(index) == len(local) == 48 and index.paths == local.paths
    np.testing.assert_allclose(index.embeddings, local.embeddings, atol=1e-5)
    # the same skipped files, with the same reasons
    assert index.skipped == local.skipped
    assert {s["path"].rsplit("/", 1)[-1] for s in index.skipped} == {"damaged.png", "notes.txt"}
    assert (run.embedded, run.cached, run.settings["engine"], run.settings["actors"]) == (48, 0, "ray", 2)
    assert run.digests == local_run.digests
    # the cache: an unchanged folder embeds nothing; two new images embed two
    _, again = index_files(products, paths, tiny_embedder, skipped=skipped, engine="ray", batch_size=8, cache=cache)
    assert (again.embedded, again.cached) == (0, 48)
    np.testing.assert_allclose(again.vectors, local.embeddings, atol=1e-5)
    render_images(2, photo_folder, start=1000, workers=1)
    products, paths, skipped = folder_inputs(photo_folder)
    _, grown = index_files(products, paths, tiny_embedder, skipped=skipped, engine="ray", batch_size=8, cache=cache)
    assert (grown.embedded, grown.cached) == (2, 48)
    for new in photo_folder.glob("item_001*.png"):
        new.unlink()


def test_ray_known_and_raise_behave_as_locally(local_ray, photo_folder, tiny_embedder):
    paths = sorted(photo_folder.glob("item_*.png"))[:6]
    first = embed_files(tiny_embedder, paths, batch_size=4)
    run = embed_files_ray(tiny_embedder, paths, batch_size=4, known={first.digests[0], first.digests[3]})
    assert run.known == [0, 3] and run.kept == [1, 2, 4, 5]
    np.testing.assert_allclose(run.vectors, first.vectors[[1, 2, 4, 5]], atol=1e-5)
    from course_utils.images import UnusableImage

    with pytest.raises(UnusableImage, match="damaged.png"):
        embed_files_ray(tiny_embedder, [*paths[:2], photo_folder / "damaged.png"], on_error="raise")


def test_cli_index_with_the_ray_engine(local_ray, photo_folder, tiny_clip_dir, tmp_path, capsys):
    folder = tmp_path / "few"
    folder.mkdir()
    for path in sorted(photo_folder.glob("item_*.png"))[:5]:
        shutil.copy(path, folder)
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "index.npz"
    argv = ["index", str(folder), "--model", str(tiny_clip_dir), "--device", "cpu", "--engine", "ray"]
    code = main([*argv, "--actors", "1", "--out", str(out), "--no-cache", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["indexed"] == 5 and report["embedded"] == 5
    assert [s["reason"] for s in report["skipped"]] == ["not an image file type ('.txt')"]
    assert len(ImageIndex.load(out)) == 5
    # the engine writes index files only: a Chroma store is refused in one line
    code = main([*argv, "--store", "chroma:" + str(tmp_path / "db")])
    assert code == 2 and "--engine ray writes an index file" in capsys.readouterr().err
