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
