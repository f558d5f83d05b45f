"""Files the course writes: the permissions a user expects, and data on disk before the rename."""

import os
import stat

import numpy as np
import pytest

from course_utils.catalog import default_catalog, render_catalog
from course_utils.files import write_atomic
from course_utils.index import ImageIndex

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes and umask are POSIX")


@pytest.fixture
def umask():
    """Set the process umask for one test and put the old one back."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_a_new_file_gets_the_mode_the_umask_allows(tmp_path, umask, mask, expected):
    umask(mask)
    write_atomic(tmp_path / "new.bin", b"data")
    assert mode(tmp_path / "new.bin") == expected


def test_a_replaced_file_keeps_its_mode(tmp_path, umask):
    umask(0o077)  # stricter than the file: the file's own mode still wins
    path = tmp_path / "shared.json"
    path.write_bytes(b"old")
    path.chmod(0o664)
    write_atomic(path, b"new")
    assert path.read_bytes() == b"new" and mode(path) == 0o664


def test_the_data_is_on_disk_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append(("fsync", os.fstat(fd).st_size)) or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda src, dst: events.append(("replace",)) or real_replace(src, dst))
    write_atomic(tmp_path / "index.npz", b"x" * 100)
    assert ("fsync", 100) in events and events.index(("fsync", 100)) < events.index(("replace",))


def test_a_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "catalog.json"
    path.write_bytes(b"old")

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        write_atomic(path, b"new")
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["catalog.json"]


def test_catalog_images_and_index_respect_the_umask(tmp_path, umask):
    umask(0o022)
    paths = render_catalog(default_catalog(), tmp_path / "catalog")
    index = ImageIndex(np.eye(8, 4, dtype=np.float32), default_catalog(), [str(p) for p in paths], "m")
    saved = index.save(tmp_path / "index.npz")
    for path in [*paths, tmp_path / "catalog" / "catalog.json", saved]:
        assert mode(path) == 0o644, path


def test_cache_shards_respect_the_umask(tmp_path, umask, tiny_embedder, catalog_dir):
    from course_utils.indexing import embed_files

    umask(0o022)
    embed_files(tiny_embedder, sorted(catalog_dir.glob("*.png")), cache=tmp_path / "cache")
    shards = list((tmp_path / "cache").rglob("*.npz"))
    assert shards and all(mode(shard) == 0o644 for shard in shards)
