import numpy as np
import pytest

from course_utils.catalog import default_catalog
from course_utils.embeddings import l2_normalize
from course_utils.errors import CourseError
from course_utils.index import ImageIndex, top_k


def random_index(n=50, d=8, seed=0, model_id="m@1"):
    rng = np.random.default_rng(seed)
    products = (default_catalog() * (n // 8 + 1))[:n]
    return ImageIndex(l2_normalize(rng.normal(size=(n, d))), products, [f"img{i}.png" for i in range(n)], model_id)


@pytest.mark.parametrize("k", [1, 10, 100, 9_999])
def test_top_k_equals_a_full_sort(k):
    # large enough that argpartition's unsorted output is never sorted by luck (at n = 50 it was)
    scores = np.random.default_rng(1).normal(size=10_000)
    best = top_k(scores, k)
    assert list(best) == list(np.argsort(-scores)[:k])
    assert all(np.diff(scores[best]) <= 0)


def test_search_ranks_by_cosine_similarity():
    index = random_index()
    query = index.embeddings[7] * 3.0  # not normalised: search normalises it
    hits = index.search(query, k=3)
    assert hits[0][0] == 7 and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    assert hits[0][1] >= hits[1][1] >= hits[2][1]


def test_k_larger_than_index_returns_everything():
    index = random_index(n=5)
    assert sorted(i for i, _ in index.search(index.embeddings[0], k=100)) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("k", [0, -2])
def test_k_must_be_positive(k):
    with pytest.raises(CourseError, match="k must be at least 1"):
        random_index().search(np.ones(8), k=k)


def test_query_dimension_mismatch():
    with pytest.raises(CourseError, match="numbers"):
        random_index().search(np.ones(5), k=1)


def test_save_and_load_round_trip(tmp_path):
    index = random_index()
    path = index.save(tmp_path / "index.npz")
    loaded = ImageIndex.load(path)
    np.testing.assert_array_equal(loaded.embeddings, index.embeddings)
    assert loaded.products == index.products and loaded.paths == index.paths
    assert loaded.model_id == "m@1"
    assert [p.name for p in tmp_path.iterdir()] == ["index.npz"]  # no temp files left behind


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(CourseError, match="not found"):
        ImageIndex.load(tmp_path / "missing.npz")
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CourseError, match="not a valid index"):
        ImageIndex.load(broken)


def test_failed_save_keeps_the_previous_index(tmp_path, monkeypatch):
    index = random_index()
    path = index.save(tmp_path / "index.npz")
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("course_utils.catalog.os.replace", explode)
    with pytest.raises(KeyboardInterrupt):
        random_index(seed=5).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["index.npz"]


def test_model_mismatch_is_an_error():
    with pytest.raises(CourseError, match="built with model 'm@1'"):
        random_index().check_model("other@2")


def test_built_index_matches_the_embedder(tiny_index, tiny_embedder):
    assert len(tiny_index) == 8 and tiny_index.model_id == tiny_embedder.model_id
    np.testing.assert_allclose(np.linalg.norm(tiny_index.embeddings, axis=1), 1.0, rtol=1e-5)


# --------------------------------------------------------------------------- what mutation testing found untested


@pytest.mark.parametrize(("given", "written"), [("idx", "idx.npz"), ("idx.npz", "idx.npz"), ("idx.v2", "idx.v2.npz")])
def test_save_names_the_file_npz_and_load_finds_it_without_the_suffix(tmp_path, given, written):
    path = random_index(n=3).save(tmp_path / given)
    assert path == tmp_path / written and path.is_file()
    assert len(ImageIndex.load(tmp_path / written.removesuffix(".npz"))) == 3


def test_a_round_trip_keeps_photos_skipped_files_and_float16():
    import tempfile
    from pathlib import Path

    from course_utils.catalog import Product

    photos = [Product.from_file_name("IMG_0001"), Product.from_file_name("Beach day")]
    vectors = l2_normalize(np.random.default_rng(0).normal(size=(2, 4)))
    skipped = [{"path": "broken.jpg", "reason": "empty file"}]
    index = ImageIndex(vectors, photos, ["a.jpg", "b.jpg"], "m@1", skipped=skipped, dtype="float16")
    with tempfile.TemporaryDirectory() as tmp:
        loaded = ImageIndex.load(index.save(Path(tmp) / "photos"))
    assert loaded.products == photos and all(p.price is None for p in loaded.products)
    assert loaded.skipped == skipped
    assert loaded.dtype == "float16" and loaded.embeddings.dtype == np.float16


def test_an_index_without_rows_or_with_nan_vectors_is_refused(tmp_path):
    empty = ImageIndex(np.zeros((0, 4)), [], [], "m@1").save(tmp_path / "empty")
    with pytest.raises(CourseError, match="holds no images"):
        ImageIndex.load(empty)
    broken = random_index(n=3)
    broken.embeddings[1, 0] = np.nan
    with pytest.raises(CourseError, match="not finite"):
        ImageIndex.load(broken.save(tmp_path / "nan"))


def test_z_scores_of_equal_scores_are_zero_not_nan():
    from course_utils.retrieval import z_scores

    assert np.array_equal(z_scores(np.full(5, 0.3)), np.zeros(5))
    z = z_scores(np.array([0.1, 0.2, 0.3]))
    assert z[2] > 0 > z[0] and abs(z.mean()) < 1e-9
