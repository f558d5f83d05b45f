"""The photo benchmark: its generated folder looks like a phone's, and its run reports every figure (no timing assertions)."""

import contextlib
import io
import math

import pytest
from PIL import Image

from course_utils.bench import photos
from course_utils.cli import main
from course_utils.images import open_image
from course_utils.indexing import workers as decoding


def test_generated_folder_is_phone_like(tmp_path):
    paths = photos.make_photos(8, tmp_path, size=(640, 480))
    kinds = [photos.photo_kind(i) for i in range(8)]
    assert kinds.count("portrait") == 2 and kinds.count("screenshot") == 1
    for path, kind in zip(paths, kinds, strict=True):
        with Image.open(path) as image:
            orientation = image.getexif().get(photos.ORIENTATION_TAG)
            if kind == "screenshot":
                assert image.format == "PNG" and image.height > image.width
                continue
            assert image.format == "JPEG" and image.size == (640, 480)  # stored as the sensor sees it
            assert orientation == (6 if kind == "portrait" else None)
        # upright once the orientation is applied: a portrait photo is taller than wide
        upright = open_image(path)
        assert upright.size == ((480, 640) if kind == "portrait" else (640, 480))


def test_generated_photos_compress_like_photos(tmp_path):
    (path,) = photos.make_photos(1, tmp_path)
    with Image.open(path) as image:
        assert image.size == photos.PHOTO_SIZE and image.format == "JPEG"
    # a 12-megapixel phone JPEG at quality 90 weighs megabytes; a flat picture would be a few hundred KB
    assert 1.0 < path.stat().st_size / 2**20 < 8.0


def test_same_seed_same_files(tmp_path):
    a = photos.make_photos(2, tmp_path / "a", size=(320, 240))
    b = photos.make_photos(2, tmp_path / "b", size=(320, 240))
    c = photos.make_photos(2, tmp_path / "c", seed=1, size=(320, 240))
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert a[0].read_bytes() != c[0].read_bytes()
    assert a[0].read_bytes() != a[1].read_bytes()


@pytest.fixture(scope="module")
def photo_run(tiny_clip_dir):
    return photos.run_photo_bench(
        model=str(tiny_clip_dir), device="cpu", n_photos=8, batch_size=4, repeat=1, photo_size=(640, 480)
    )


def test_photo_bench_reports_every_figure(photo_run):
    result = photo_run
    assert result["photos_n"] == 8 and result["photos_size"] == [640, 480]
    assert (result["photos_portrait"], result["photos_screenshots"]) == (2, 1)
    assert result["photos_jpeg_mb_mean"] > 0
    for method in ("naive_per_image", "naive_single_call", "pipeline"):
        assert math.isfinite(result[f"photos_{method}_ips"]) and result[f"photos_{method}_ips"] > 0
        assert result[f"photos_{method}_peak_mb"] >= 0
    for key in ("photos_model_only_ips", "photos_decode_ceiling_ips", "photos_decode_no_draft_ips"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    # the decode ceiling is timed with the best setup, on all cores, processes included where they can fork
    setups = result["photos_decode_by_workers"]
    assert result["photos_decode_ceiling_workers"] == max(setups, key=setups.get)
    batches = result["photos_model_only_by_batch"]
    assert result["photos_model_only_batch"] == max(batches, key=batches.get)
    assert f"{result['cpu_cores']} processes" in setups or not decoding.can_fork()
    # the ratios are the figures' own
    bound = min(result["photos_model_only_ips"], result["photos_decode_ceiling_ips"])
    assert result["photos_pipeline_vs_bound"] == pytest.approx(result["photos_pipeline_ips"] / bound)
    shared = 1 / (1 / result["photos_model_only_ips"] + 1 / result["photos_decode_ceiling_ips"])
    assert result["photos_shared_cores_bound_ips"] == pytest.approx(shared) and shared < bound
    assert result["photos_pipeline_vs_shared_cores_bound"] == pytest.approx(result["photos_pipeline_ips"] / shared)
    assert result["photos_pipeline_vs_per_image"] == pytest.approx(
        result["photos_pipeline_ips"] / result["photos_naive_per_image_ips"]
    )
    assert result["photos_draft_speedup"] == pytest.approx(
        result["photos_decode_ceiling_ips"] / result["photos_decode_no_draft_ips"]
    )
    # draft decoding never goes below the model's input size, so the vectors stay the naive path's
    assert result["photos_pipeline_vs_naive_min_cosine"] > 0.999


def test_photo_table_names_each_method(photo_run):
    table = photos.format_photo_table(photo_run)
    for label in ("naive per-image loop", "pipeline", "model-only ceiling", "decode-only ceiling", "draft mode"):
        assert label in table


def test_too_few_photos_is_one_line(tiny_clip_dir, capsys):
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["bench", "--photos", "1", "--model", str(tiny_clip_dir), "--device", "cpu"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "--photos must be at least 2" in err and len(err.splitlines()) == 1
