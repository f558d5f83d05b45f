"""Reliability: a corpus of bad embedding-cache files, and indexers sharing one cache at the same time.

The cache is a folder of ``.npz`` shards that any program (or person) can write into. Whatever it
holds, indexing must go on: a shard that cannot be used is moved to ``quarantine/`` and its images
are embedded again. Every case is built inside tmp_path.
"""

import multiprocessing
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from deadline import run_with_a_deadline
from PIL import Image

from course_utils.indexing import EmbeddingCache, embed_files
from course_utils.indexing import cache as cache_module


@pytest.fixture
def photos(tmp_path):
    """Eight small pictures, each different."""
    folder = tmp_path / "photos"
    folder.mkdir()
    return [picture(folder, i) for i in range(8)]


def picture(folder: Path, i: int) -> Path:
    rng = np.random.default_rng(i)
    path = folder / f"photo_{i:03d}.png"
    Image.fromarray(rng.integers(0, 256, (24 + i % 5, 30, 3), dtype=np.uint8)).save(path)
    return path


def npz(**arrays):
    def make(path, digests, dim):
        with open(path, "wb") as fh:
            np.savez(fh, **{k: v(digests, dim) if callable(v) else v for k, v in arrays.items()})

    return make


def raw(data):
    def make(path, digests, dim):
        path.write_bytes(data)

    return make


def npy(path, digests, dim):
    """One array in NumPy's .npy format, not an .npz archive of two."""
    with open(path, "wb") as fh:
        np.save(fh, np.ones((len(digests), dim), dtype=np.float32))


def fifo(path, digests, dim):
    os.mkfifo(path)


def folder(path, digests, dim):
    path.mkdir()
    (path / "inside.txt").write_text("a folder named like a shard")


def link(target):
    def make(path, digests, dim):
        os.symlink(target, path)

    return make


def real(digests, dim):
    return np.array(digests, dtype=str)


def unit(n_extra=0, value=None):
    def vectors(digests, dim):
        rows = np.random.default_rng(0).normal(size=(len(digests), dim + n_extra)).astype(np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        if value is not None:
            rows[len(rows) // 2, 0] = value
        return rows

    return vectors


# name -> builder(path, digests of real photos, the model's dim): each must be set aside
CASES = {
    "garbage.npz": raw(b"PK\x03\x04 not a zip"),
    "empty.npz": raw(b""),
    "text.npz": raw(b"digests,vectors\n"),
    "npy_not_npz.npz": npy,
    "wrong_dimension.npz": npz(digests=real, vectors=unit(n_extra=3)),
    "zero_d_digests.npz": npz(digests=np.array("abc"), vectors=unit()),
    "two_d_digests.npz": npz(digests=lambda d, dim: real(d, dim)[:, None], vectors=unit()),
    "number_digests.npz": npz(digests=np.arange(8), vectors=unit()),
    "one_d_vectors.npz": npz(digests=real, vectors=lambda d, dim: np.ones(len(d), dtype=np.float32)),
    "three_d_vectors.npz": npz(digests=real, vectors=lambda d, dim: np.ones((len(d), dim, 1), dtype=np.float32)),
    "text_vectors.npz": npz(digests=real, vectors=lambda d, dim: np.full((len(d), dim), "x")),
    "complex_vectors.npz": npz(digests=real, vectors=lambda d, dim: unit()(d, dim) * (1 + 1j)),
    "nan_vector.npz": npz(digests=real, vectors=unit(value=np.nan)),
    "infinite_vector.npz": npz(digests=real, vectors=unit(value=np.inf)),
    "fewer_vectors.npz": npz(digests=real, vectors=lambda d, dim: unit()(d, dim)[:-1]),
    "no_vectors.npz": npz(digests=real),
    "pickled.npz": npz(digests=real, vectors=lambda d, dim: np.array([object()] * len(d))),
    "named_pipe.npz": fifo,
    "folder.npz": folder,
    "link_to_dev_zero.npz": link("/dev/zero"),
    "dangling_link.npz": link("does-not-exist.npz"),
}


def test_corpus_size():
    """The number of bad-cache cases this file covers (reported in the engineering notes)."""
    assert len(CASES) >= 20


def shard_folder(root: Path) -> Path:
    """The one folder of shards under a cache root."""
    (folder,) = {shard.parent for shard in root.rglob("*.npz")}
    return folder


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_bad_shard_is_set_aside_and_its_images_embedded_again(tiny_embedder, photos, tmp_path, name):
    cache = tmp_path / "cache"
    want = embed_files(tiny_embedder, photos, cache=False).vectors
    embed_files(tiny_embedder, photos[:4], cache=cache)  # half the photos are in the cache
    digests = embed_files(tiny_embedder, photos, cache=False).digests
    shards = shard_folder(cache)
    bad = shards / f"ffffffffffffffff-{name}"  # sorted after the good shards: read last, as if newest
    CASES[name](bad, digests, tiny_embedder.dim)

    result = run_with_a_deadline(lambda: embed_files(tiny_embedder, photos, cache=cache), fifos=[bad])
    assert (result.cached, result.embedded, result.skipped) == (4, 4, [])
    np.testing.assert_allclose(result.vectors, want, atol=1e-5)
    assert not os.path.lexists(bad) and os.path.lexists(shards / "quarantine" / bad.name)  # kept to look at
    again = embed_files(tiny_embedder, photos, cache=cache)
    assert (again.cached, again.embedded) == (8, 0)


def test_more_bad_shards_than_the_merge_limit_do_not_break_indexing(tiny_embedder, photos, tmp_path):
    """Unreadable shards once made every later run crash in the merge (nothing left to stack)."""
    cache = tmp_path / "cache"
    embed_files(tiny_embedder, photos[:1], cache=cache)
    shards = shard_folder(cache)
    for shard in shards.glob("*.npz"):
        shard.unlink()
    for i in range(cache_module.MAX_CACHE_SHARDS + 1):
        (shards / f"{i:04d}-damaged.npz").write_bytes(b"PK\x03\x04 damaged")
    first = embed_files(tiny_embedder, photos, cache=cache)
    second = embed_files(tiny_embedder, photos, cache=cache)
    assert (first.embedded, second.cached, second.embedded) == (8, 8, 0)
    assert len(list((shards / "quarantine").iterdir())) == cache_module.MAX_CACHE_SHARDS + 1


def vector(i):
    row = np.zeros((1, 4), dtype=np.float32)
    row[0, i % 4] = 1.0
    return row


@pytest.fixture
def five_shards(tmp_path, monkeypatch):
    """A cache folder of five one-entry shards, above a merge limit of three."""
    monkeypatch.setattr(cache_module, "MAX_CACHE_SHARDS", 3)
    writer = EmbeddingCache(tmp_path)
    for i in range(5):
        writer.put([f"d{i}"], vector(i))
    return tmp_path


def while_reading(monkeypatch, action):
    """Run ``action`` once, right after this process read its first shard (it has listed them all)."""
    real_load = np.load
    done = []

    def load(*args, **kwargs):
        data = real_load(*args, **kwargs)
        if not done:
            done.append(1)
            action()
        return data

    monkeypatch.setattr(np, "load", load)


def test_shards_another_process_merged_meanwhile_are_found(five_shards, monkeypatch):
    """Another indexer merges the shards this one has listed but not read yet: their entries are not lost."""
    while_reading(monkeypatch, lambda: EmbeddingCache(five_shards).load())  # merges the five, removes them
    reader = EmbeddingCache(five_shards).load()
    assert sorted(reader.digests()) == ["d0", "d1", "d2", "d3", "d4"]


def test_a_merge_removes_only_the_shards_it_read(five_shards, monkeypatch):
    """A shard written after this process listed the folder is not its to merge, so it must stay."""

    def another_process_writes():
        with open(five_shards / "ffffffffffffffff-late.npz", "wb") as fh:
            np.savez(fh, digests=np.array(["late"]), vectors=vector(7))

    while_reading(monkeypatch, another_process_writes)
    reader = EmbeddingCache(five_shards).load()  # five shards read: it merges them
    assert sorted(reader.digests()) == ["d0", "d1", "d2", "d3", "d4"]
    monkeypatch.undo()
    assert sorted(EmbeddingCache(five_shards).digests()) == ["d0", "d1", "d2", "d3", "d4", "late"]
    assert len(list(five_shards.glob("*.npz"))) == 2  # the merged shard and the late one


def test_put_keeps_only_finite_vectors_of_the_models_size(tmp_path):
    cache = EmbeddingCache(tmp_path)  # no size given: the first vectors stored set it
    rows = np.full((3, 4), 0.5, dtype=np.float32)
    rows[1, 2] = np.nan
    cache.put(["a", "b", "c"], rows)
    assert sorted(EmbeddingCache(tmp_path).digests()) == ["a", "c"] and "b" not in cache
    with pytest.raises(ValueError, match="4"):
        cache.put(["d"], np.ones((1, 5), dtype=np.float32))


# --------------------------------------------------------------------------- indexers side by side


def _index_in_a_process(embedder, paths, cache, start, results):
    import torch

    torch.set_num_threads(1)
    start.wait()  # every indexer opens the cache at once
    result = embed_files(embedder, paths, cache=cache, workers=1, parallel="threads", progress=False)
    results.put((os.getpid(), result.cached, result.embedded))


def run_side_by_side(embedder, paths, cache, n=4, seconds=240):
    """``n`` processes index ``paths`` at the same moment; returns each one's (cached, embedded)."""
    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(n), context.Queue()
    processes = [
        context.Process(target=_index_in_a_process, args=(embedder, paths, cache, start, results)) for _ in range(n)
    ]
    for process in processes:
        process.start()
    try:
        counts = [results.get(timeout=seconds)[1:] for _ in processes]
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()
    return counts


def test_four_indexers_at_once_lose_no_cache_hit(tiny_embedder, tmp_path, monkeypatch):
    """Four processes open a cache of many shards together: each merge may only remove what it read."""
    paths = [picture(tmp_path, i) for i in range(40)]
    monkeypatch.setattr(cache_module, "MAX_CACHE_SHARDS", 8)  # the forked indexers inherit it
    cache = tmp_path / "cache"
    for round_ in range(3):
        shutil.rmtree(cache, ignore_errors=True)
        embed_files(tiny_embedder, paths[:30], cache=cache, batch_size=1)  # 30 one-image shards
        counts = run_side_by_side(tiny_embedder, paths, cache)
        assert sorted(counts) == [(30, 10)] * 4, f"round {round_}: (cached, embedded) per indexer {counts}"
        assert embed_files(tiny_embedder, paths, cache=cache).cached == 40
