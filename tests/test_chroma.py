"""The Chroma backend: same answers as the NumPy index, embedded and over HTTP to a real `chroma run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from chroma_server import _chroma_server, closed_port_url  # noqa: F401  (the chroma_server fixture)
from deadline import run_with_a_deadline

from course_utils.bench.chroma import bench_chroma, bench_vectors, format_bench
from course_utils.catalog import default_catalog
from course_utils.cli import main
from course_utils.errors import CourseError
from course_utils.index import ImageIndex, MetadataFilter
from course_utils.indexing import build_index
from course_utils.rag import ImageRAG
from course_utils.retrieval import retrieve
from course_utils.store import ChromaIndex, StoreSpec, chroma_client, metadata_where, open_store, parse_store
from course_utils.store.chroma import INSTALL_HINT, content_id
from course_utils.widgets import backend_explorer

QUERIES = ("red circle", "blue striped square", "a teal product", "cheapest widgets", "gadgets under $20", "tools")
FILTERS = [
    MetadataFilter(),
    MetadataFilter(frozenset({"widgets"})),
    MetadataFilter(frozenset({"gadgets", "tools"}), None, 20.0),
    MetadataFilter(min_price=15),  # an int price limit must still compare with the float prices
    MetadataFilter(frozenset({"widgets"}), 12.0, 25.0),
    MetadataFilter(frozenset({"nothing-here"})),
]


def catalog_paths(catalog_dir: Path) -> list[Path]:
    return [catalog_dir / f"{p.slug}.png" for p in default_catalog()]


class RenamedEmbedder:
    """The same CLIP model under another model id: what a query or build from another model looks like."""

    def __init__(self, inner, model_id: str) -> None:
        self.inner, self.model_id = inner, model_id

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture
def embedded_images(monkeypatch):
    """Counts the images the pipeline embeds (to see what a re-index recomputes)."""
    from course_utils.store import chroma as chroma_module

    seen: list[str] = []
    real = chroma_module.embed_files

    def counting(embedder, images, **options):
        images = list(images)
        result = real(embedder, images, **options)
        seen.extend(str(images[i]) for i in result.kept)
        return result

    monkeypatch.setattr(chroma_module, "embed_files", counting)
    return seen


@pytest.fixture(scope="module")
def embedded_store(tmp_path_factory, tiny_embedder, catalog_dir):
    store = open_store(f"chroma:{tmp_path_factory.mktemp('chroma-db')}", create=True)
    return store.build(default_catalog(), catalog_paths(catalog_dir), tiny_embedder)


@pytest.fixture(scope="module")
def http_store(chroma_server, tiny_embedder, catalog_dir):
    store = open_store(chroma_server.url, create=True, collection="catalog-http")
    return store.build(default_catalog(), catalog_paths(catalog_dir), tiny_embedder)


@pytest.fixture(params=["embedded", "http"])
def store(request):
    return request.getfixturevalue(f"{request.param}_store")


# --------------------------------------------------------------------------- choosing a store


def test_parse_store_argument_then_env_then_numpy(monkeypatch):
    monkeypatch.delenv("COURSE_INDEX", raising=False)
    assert parse_store() == StoreSpec("numpy")
    assert parse_store("numpy:my.npz") == StoreSpec("numpy", "my.npz")
    monkeypatch.setenv("COURSE_INDEX", "chroma:./db")
    assert parse_store() == StoreSpec("chroma", "./db")
    assert parse_store("http://127.0.0.1:9000") == StoreSpec("http", "http://127.0.0.1:9000")
    assert str(parse_store("https://db.example.org")) == "https://db.example.org:8000"
    assert str(parse_store()) == "chroma:./db"


@pytest.mark.parametrize(
    "spec", ["chroma:", "sqlite:x.db", "ftp://host:1", "http://127.0.0.1:99999", "http://h:8000/x"]
)
def test_parse_store_rejects_what_it_cannot_open(spec):
    with pytest.raises(CourseError, match="Use numpy, chroma:PATH"):
        parse_store(spec)


def test_without_chromadb_the_error_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "chromadb", None)  # what `import chromadb` sees when it is not installed
    assert parse_store("chroma:db").kind == "chroma"  # choosing a store needs no chromadb
    with pytest.raises(CourseError) as error:
        open_store(f"chroma:{tmp_path}", create=True)
    assert INSTALL_HINT in str(error.value)


def test_the_core_package_does_not_import_chromadb():
    code = (
        "import sys, course_utils, course_utils.cli, course_utils.store; "
        "sys.exit(1 if 'chromadb' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_metadata_where_builds_chroma_filters():
    assert metadata_where(MetadataFilter()) is None
    assert metadata_where(MetadataFilter(frozenset({"tools"}))) == {"category": {"$in": ["tools"]}}
    assert metadata_where(MetadataFilter(min_price=5, max_price=20)) == {
        "$and": [{"price": {"$gte": 5.0}}, {"price": {"$lte": 20.0}}]
    }


# --------------------------------------------------------------------------- same answers as NumPy


def test_same_rows_similarities_and_top_k_as_numpy(store, tiny_index, tiny_embedder):
    assert len(store) == len(tiny_index) == 8
    assert store.products == tiny_index.products
    assert store.paths == [os.path.abspath(p) for p in tiny_index.paths]
    assert store.model_id == tiny_index.model_id and store.dim == tiny_index.dim
    for query in tiny_embedder.embed_texts(list(QUERIES)):
        np.testing.assert_allclose(store.similarities(query), tiny_index.similarities(query), atol=1e-5)
        for k in (1, 3, 20):
            got, want = store.search(query, k), tiny_index.search(query, k)
            assert [row for row, _ in got] == [row for row, _ in want]
            np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)


@pytest.mark.parametrize("plan", ["none", "hybrid"])
def test_retrieval_gives_the_same_top_k_names(store, tiny_index, tiny_embedder, plan):
    for query in QUERIES:
        from_numpy = retrieve(query, tiny_index, tiny_embedder, k=3, plan=plan)
        from_chroma = retrieve(query, store, tiny_embedder, k=3, plan=plan)
        assert [p.name for p in from_chroma.products] == [p.name for p in from_numpy.products], query
        assert (from_chroma.plan, from_chroma.match) == (from_numpy.plan, from_numpy.match)


def test_image_rag_gives_the_same_answer_on_both_backends(store, tiny_index, tiny_embedder):
    for question in ("What red products do you have?", "Which widgets cost less than $20?"):
        with_numpy = ImageRAG(tiny_index, tiny_embedder).answer(question)
        with_chroma = ImageRAG(store, tiny_embedder).answer(question)
        assert [h.product.name for h in with_chroma.hits] == [h.product.name for h in with_numpy.hits]
        assert with_chroma.answer == with_numpy.answer and with_chroma.prompt == with_numpy.prompt


class RecordingCollection:
    """Stands in for a Chroma collection and records the ``where=`` of every ``get``."""

    def __init__(self, real) -> None:
        self.real, self.wheres = real, []

    def get(self, *args, **kwargs):
        self.wheres.append(kwargs.get("where"))
        return self.real.get(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_metadata_filters_run_inside_the_database(store, tiny_index):
    index = ChromaIndex(store.client, store.name, store=store.store, create=False)
    index.collection = RecordingCollection(index.collection)
    len(index)  # rows are read once, without a filter
    index.collection.wheres.clear()
    for rules in FILTERS:
        assert index.rows_where(rules) == tiny_index.rows_where(rules)
    expected = [metadata_where(f) for f in FILTERS if metadata_where(f) is not None]
    assert index.collection.wheres == expected


def test_rows_written_by_another_client_are_found(tmp_path, tiny_embedder, catalog_dir):
    products, paths = default_catalog(), catalog_paths(catalog_dir)
    reader = open_store(f"chroma:{tmp_path}", create=True).build(products[:4], paths[:4], tiny_embedder)
    assert reader.rows_where(MetadataFilter(frozenset({"tools"}))) == [] and len(reader) == 4
    writer = open_store(f"chroma:{tmp_path}")
    writer.add(products[4:], paths[4:], tiny_embedder.embed_images(paths[4:]))
    tools = reader.rows_where(
        MetadataFilter(frozenset({"tools"}))
    )  # the database answers; the reader re-reads its rows
    assert sorted(reader.products[i].name for i in tools) == ["Tool M", "Tool N"] and len(reader) == 8


# --------------------------------------------------------------------------- writing


def test_reindexing_is_idempotent_and_only_embeds_new_images(tmp_path, tiny_embedder, catalog_dir, embedded_images):
    products, paths = default_catalog(), catalog_paths(catalog_dir)
    store = open_store(f"chroma:{tmp_path}", create=True).build(products, paths, tiny_embedder)
    ids = store.ids
    assert ids == [content_id(p) for p in paths] and len(embedded_images) == 8
    store.build(products, paths, tiny_embedder)
    assert len(store) == store.collection.count() == 8 and store.ids == ids
    assert len(embedded_images) == 8 and store.last_build == {"embedded": 0, "updated": 8, "removed": 0}
    cheaper = [replace(p, price=1.0) if p.name == "Tool M" else p for p in products]
    store.build(cheaper, paths, tiny_embedder)
    assert store.collection.count() == 8 and store.products == cheaper and len(embedded_images) == 8
    store.build(cheaper[:6], paths[:6], tiny_embedder)
    assert store.collection.count() == 6 and store.last_build["removed"] == 2
    assert open_store(f"chroma:{tmp_path}").products == cheaper[:6]  # a fresh client sees the same rows


def test_a_photo_folder_without_catalog_copies_and_broken_files(tmp_path, tiny_embedder, catalog_dir):
    from course_utils.indexing import folder_inputs

    photos = tmp_path / "photos"
    photos.mkdir()
    for path in catalog_paths(catalog_dir)[:4]:
        (photos / f"IMG_{path.stem}.png").write_bytes(path.read_bytes())
    (photos / "IMG_widget_a_copy.png").write_bytes((photos / "IMG_widget_a.png").read_bytes())
    (photos / "IMG_broken.png").write_bytes(b"not a png at all")
    products, paths, _ = folder_inputs(photos)
    store = open_store(f"chroma:{tmp_path / 'db'}", create=True).build(products, paths, tiny_embedder)
    reasons = {Path(s["path"]).name: s["reason"] for s in store.skipped}
    assert (
        set(reasons) == {"IMG_widget_a_copy.png", "IMG_broken.png"}
        and "same image as IMG_widget_a.png" in reasons["IMG_widget_a_copy.png"]
    )
    assert len(store) == 4 and all(p.price is None for p in store.products)
    kept = [i for i, p in enumerate(products) if p.name not in ("IMG_widget_a_copy", "IMG_broken")]
    assert store.products == [products[i] for i in kept]
    assert store.rows_where(MetadataFilter(min_price=0)) == []
    assert store.rows_where(MetadataFilter(frozenset({"unknown"}))) == [0, 1, 2, 3]
    numpy_index = build_index([products[i] for i in kept], [paths[i] for i in kept], tiny_embedder)
    query = tiny_embedder.embed_texts(["a red circle"])[0]
    want = [numpy_index.products[row].name for row, _ in numpy_index.search(query, 3)]
    assert [store.products[row].name for row, _ in store.search(query, 3)] == want
    broken_only = tmp_path / "broken"
    broken_only.mkdir()
    (broken_only / "a.png").write_bytes(b"nope")
    with pytest.raises(CourseError, match="nothing to index"):
        open_store(f"chroma:{tmp_path / 'db2'}", create=True).build(
            [products[0]], [broken_only / "a.png"], tiny_embedder
        )


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # the corpus's 12000x10000 header
def test_build_skips_the_bad_image_corpus_without_hanging(tmp_path, tiny_embedder):
    """Broken links, a FIFO, a link to /dev/zero, damaged images: skipped with the NumPy index's reasons."""
    from test_bad_images import BAD, CASES, GOOD, build

    from course_utils.indexing import folder_inputs

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in CASES:
        build(folder, name)
    products, paths, _ = folder_inputs(folder)
    store = open_store(f"chroma:{tmp_path / 'db'}", create=True)
    run_with_a_deadline(lambda: store.build(products, paths, tiny_embedder), fifos=[folder / "named_pipe.png"])
    reasons = {Path(s["path"]).name: s["reason"] for s in store.skipped}
    copies = [name for name, reason in reasons.items() if reason.startswith("the same image as")]
    bad = {name for name in BAD if "not an image file type" not in CASES[name][1]}  # the folder scan's own
    assert set(reasons) - set(copies) == bad
    for name in bad:
        assert CASES[name][1] in reasons[name], (name, reasons[name])
    assert len(store) == len(GOOD) - len(copies) > 0


def unreadable_files(folder: Path) -> list[Path]:
    """Files whose bytes once stopped (a broken link), hung (a FIFO) or exhausted (/dev/zero) a Chroma build."""
    folder.mkdir()
    os.symlink("nowhere.png", folder / "broken_link.png")
    os.mkfifo(folder / "named_pipe.png")
    os.symlink("/dev/zero", folder / "endless.png")
    return sorted(folder.iterdir())


def damaged_files(folder: Path) -> list[Path]:
    """Files that read fine but are not images."""
    folder.mkdir()
    (folder / "damaged.png").write_bytes(b"\x89PNG\r\n\x1a\n damaged")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.webp").write_text("not a picture")
    return sorted(folder.iterdir())


class BrokenModelEmbedder(RenamedEmbedder):
    """Another model that fails on every batch (say, weights for another image size)."""

    class _Model:
        def get_image_features(self, **kwargs):
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (1x49 and 50x32)")

    model = _Model()


def _failed_write(*args, **kwargs):
    raise RuntimeError("the Chroma server went away mid-write")


@pytest.mark.parametrize(
    "case",
    [
        "every-file-damaged",
        "every-file-unreadable",
        "another-model-every-file-damaged",
        "another-model-every-file-unreadable",
        "another-model-that-fails",
        "another-model-write-fails",
    ],
)
def test_a_failed_build_keeps_the_old_collection(tmp_path, tiny_embedder, catalog_dir, monkeypatch, case):
    products, paths = default_catalog(), catalog_paths(catalog_dir)
    store = open_store(f"chroma:{tmp_path / 'db'}", create=True).build(products, paths, tiny_embedder)
    before = (store.model_id, store.ids, store.products)
    broken = damaged_files(tmp_path / "bad") if "damaged" in case else unreadable_files(tmp_path / "bad")
    embedder = tiny_embedder if case.startswith("every") else RenamedEmbedder(tiny_embedder, "another-model")
    if "every-file" in case:
        new_paths, error = broken, CourseError
    elif case == "another-model-that-fails":
        embedder, new_paths, error = BrokenModelEmbedder(tiny_embedder, "another-model"), paths, RuntimeError
    else:
        new_paths, error = paths, RuntimeError
        monkeypatch.setattr(ChromaIndex, "_upsert", _failed_write)
    some_products = (products * 2)[: len(new_paths)]
    with pytest.raises(error):
        run_with_a_deadline(lambda: store.build(some_products, new_paths, embedder), fifos=broken)
    monkeypatch.undo()
    for reader in (store, open_store(f"chroma:{tmp_path / 'db'}")):
        assert (reader.model_id, reader.ids, reader.products) == before
    assert [c.name for c in store.client.list_collections()] == ["course_images"]  # nothing left half-built


def test_add_and_content_id_refuse_what_is_not_a_regular_file(tmp_path, tiny_embedder, catalog_dir):
    products, paths = default_catalog(), catalog_paths(catalog_dir)
    store = open_store(f"chroma:{tmp_path / 'db'}", create=True)
    store.add(products[:1], paths[:1], tiny_embedder.embed_images(paths[:1]), model_id=tiny_embedder.model_id)
    reasons = {"broken_link.png": "broken symbolic link", "endless.png": "not a regular file"}
    reasons["named_pipe.png"] = "not a regular file"
    for path in unreadable_files(tmp_path / "bad"):
        for attempt in (partial(content_id, path), partial(store.add, products[1:2], [path], np.ones((1, 16)))):
            with pytest.raises(CourseError, match=reasons[path.name]):
                run_with_a_deadline(attempt, fifos=[path])
    assert store.collection.count() == 1


def test_add_upserts_by_image_content(tmp_path, tiny_embedder, catalog_dir):
    products, paths = default_catalog(), catalog_paths(catalog_dir)
    vectors = tiny_embedder.embed_images(paths)
    store = open_store(f"chroma:{tmp_path}", create=True)
    with pytest.raises(CourseError, match="model_id"):
        store.add(products, paths, vectors)
    store.add(products[:5], paths[:5], vectors[:5], model_id=tiny_embedder.model_id)
    store.add(products[3:], paths[3:], vectors[3:])  # three images again, three new ones
    assert store.collection.count() == 8 and [p.name for p in store.products] == [p.name for p in products]
    with pytest.raises(CourseError, match="byte-identical"):
        store.add(products[:2], [paths[0], paths[0]], vectors[:2])
    with pytest.raises(CourseError, match="numbers"):
        store.add(products[:1], paths[:1], np.ones((1, 7), dtype=np.float32))
    with pytest.raises(CourseError, match="holds vectors from"):
        store.add(products[:1], paths[:1], vectors[:1], model_id="another-model")


def test_a_query_from_another_model_is_refused(store, tiny_embedder):
    with pytest.raises(CourseError, match="built with model"):
        store.check_model("openai/clip-vit-base-patch32")
    with pytest.raises(CourseError, match="built with model"):
        retrieve("red circle", store, RenamedEmbedder(tiny_embedder, "another-model"))
    with pytest.raises(CourseError, match="numbers"):
        store.search(np.ones(store.dim + 1, dtype=np.float32))
    with pytest.raises(CourseError, match="k must be at least 1"):
        store.search(np.ones(store.dim, dtype=np.float32), 0)


def test_building_with_another_model_replaces_the_collection(tmp_path, tiny_embedder, catalog_dir):
    products, paths = default_catalog(), catalog_paths(catalog_dir)
    store = open_store(f"chroma:{tmp_path}", create=True).build(products, paths, tiny_embedder)
    other = RenamedEmbedder(tiny_embedder, "another-model")
    with pytest.raises(CourseError, match="holds vectors from"):
        store.build(products, paths, other, prune=False)
    store.build(products, paths, other)
    assert store.model_id == "another-model" and store.last_build["embedded"] == 8 and store.collection.count() == 8
    assert open_store(f"chroma:{tmp_path}").model_id == "another-model"


def test_missing_stores_are_clear_errors(tmp_path):
    with pytest.raises(CourseError, match="No Chroma database"):
        open_store(f"chroma:{tmp_path / 'nothing'}")
    assert not (tmp_path / "nothing").exists()  # opening to search creates nothing
    with pytest.raises(CourseError, match="Cannot reach a Chroma server"):
        open_store(closed_port_url())
    open_store(f"chroma:{tmp_path / 'empty'}", create=True)
    with pytest.raises(CourseError, match="is empty"):
        open_store(f"chroma:{tmp_path / 'empty'}")
    with pytest.raises(CourseError, match="No collection 'other'"):
        open_store(f"chroma:{tmp_path / 'empty'}", collection="other")


# --------------------------------------------------------------------------- the server


def test_data_survives_a_server_restart(chroma_server, tiny_embedder, tiny_index, catalog_dir):
    store = open_store(chroma_server.url, create=True, collection="restart-test")
    store.build(default_catalog(), catalog_paths(catalog_dir), tiny_embedder)
    query = tiny_embedder.embed_texts(["red circle"])[0]
    before = store.search(query, 3)
    chroma_server.restart()
    assert chroma_server.running and chroma_server.heartbeat()
    reopened = open_store(chroma_server.url, collection="restart-test")
    assert chroma_client(chroma_server.url).get_collection("restart-test").count() == 8
    assert reopened.products == tiny_index.products and reopened.model_id == tiny_index.model_id
    assert [row for row, _ in reopened.search(query, 3)] == [row for row, _ in before]


# --------------------------------------------------------------------------- the command line


@pytest.fixture
def cli_env(monkeypatch, tmp_path, tiny_clip_dir):
    monkeypatch.setenv("COURSE_CLIP_MODEL", str(tiny_clip_dir))
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.delenv("COURSE_INDEX", raising=False)
    return tmp_path


def cli_json(capsys, *argv) -> dict:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("backend", ["embedded", "http"])
def test_cli_index_then_search_matches_numpy(cli_env, capsys, catalog_dir, chroma_server, backend):
    spec = f"chroma:{cli_env / 'db'}" if backend == "embedded" else chroma_server.url
    if backend == "http":  # the CLI writes the server's default collection: start from none
        client = chroma_client(spec)
        if "course_images" in [c.name for c in client.list_collections()]:
            client.delete_collection("course_images")
    built = cli_json(capsys, "index", str(catalog_dir), "--store", spec, "--json")
    assert built["indexed"] == 8 and built["embedded"] == 8 and built["store"] == spec
    again = cli_json(capsys, "index", str(catalog_dir), "--store", spec, "--json")
    assert again["indexed"] == 8 and again["embedded"] == 0  # same images: nothing to embed
    numpy_file = str(cli_env / "index.npz")
    cli_json(capsys, "index", str(catalog_dir), "--out", numpy_file, "--json")
    for query in ("red circle", "cheapest gadgets"):
        want = cli_json(capsys, "search", query, "--index", numpy_file, "--json")
        got = cli_json(capsys, "search", query, "--store", spec, "--json")
        assert [r["name"] for r in got["results"]] == [r["name"] for r in want["results"]]
        assert got["model"] == want["model"]


def test_cli_reads_the_store_from_course_index(cli_env, capsys, catalog_dir, monkeypatch):
    monkeypatch.setenv("COURSE_INDEX", f"chroma:{cli_env / 'db'}")
    assert cli_json(capsys, "index", str(catalog_dir), "--json")["store"] == f"chroma:{cli_env / 'db'}"
    assert not (cli_env / "index.npz").exists()
    assert len(cli_json(capsys, "ask", "What red products do you have?", "--json")["results"]) == 3


def test_cli_store_errors_are_one_line(cli_env, capsys):
    code = main(["search", "red", "--store", f"chroma:{cli_env / 'none'}"])
    err = capsys.readouterr().err
    assert code == 2 and "No Chroma database" in err and len(err.strip().splitlines()) == 1
    code = main(["search", "red", "--store", "mysql://x"])
    assert code == 2 and "Unknown index store" in capsys.readouterr().err


def test_another_process_reads_the_embedded_database(cli_env, capsys, catalog_dir, tiny_index, tiny_embedder):
    db = cli_env / "db"
    cli_json(capsys, "index", str(catalog_dir), "--store", f"chroma:{db}", "--json")
    result = subprocess.run(
        [sys.executable, "-m", "course_utils", "search", "red circle", "--store", f"chroma:{db}", "-k", "3", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    want = retrieve("red circle", tiny_index, tiny_embedder, k=3)
    assert [r["name"] for r in json.loads(result.stdout)["results"]] == [p.name for p in want.products]


# --------------------------------------------------------------------------- benchmark and widget


def test_bench_measures_both_backends_against_exact_search(chroma_server):
    result = bench_chroma((300, 600), 16, queries=8, k=5, server_url=chroma_server.url)
    backends = [(r["size"], r["backend"]) for r in result["rows"]]
    assert backends == [(n, b) for n in (300, 600) for b in ("numpy", "chroma-embedded", "chroma-http")]
    for row in result["rows"]:
        assert 0.8 <= row["recall_at_k"] <= 1.0 and row["p50_ms"] <= row["p95_ms"]
        assert row["backend"] == "numpy" or row["insert_s"] > 0
    assert "recall@5" in format_bench(result) and "chroma-http" in format_bench(result)
    assert [c.name for c in chroma_client(chroma_server.url).list_collections() if c.name.startswith("bench")] == []
    with pytest.raises(CourseError, match="Unknown benchmark backend"):
        bench_chroma((100,), 8, backends=("faiss",))
    with pytest.raises(CourseError, match="Unknown benchmark vectors"):
        bench_chroma((100,), 8, vectors="gaussian")


def test_bench_vectors_are_unit_length_and_clustered_ones_cluster():
    rng = np.random.default_rng(0)
    for kind in ("random", "clustered"):
        data, queries = bench_vectors(kind, 500, 7, 64, rng)
        assert data.shape == (500, 64) and queries.shape == (7, 64)
        np.testing.assert_allclose(np.linalg.norm(data, axis=1), 1.0, atol=1e-5)
    random_data, _ = bench_vectors("random", 500, 1, 64, rng)
    clustered, _ = bench_vectors("clustered", 500, 1, 64, rng)
    # nearest-neighbour similarity: clustered vectors have close neighbours, random ones do not
    nearest = [np.sort(v @ v.T, axis=1)[:, -2].mean() for v in (random_data, clustered)]
    assert nearest[1] > nearest[0] + 0.2


class BorrowedServer:
    """Stands in for ChromaServer inside bench_chroma: hands out the session's running server."""

    def __init__(self, server) -> None:
        self.server = server

    def __call__(self, _path):
        return self

    def start(self):
        return self

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        pass


def test_cli_bench_adds_the_chroma_figures(cli_env, capsys, monkeypatch, chroma_server):
    import course_utils.bench as bench
    from course_utils.bench import chroma as chroma_bench

    monkeypatch.setattr(bench, "run_bench", lambda **kwargs: {"arch": "stub", "device": "cpu"})
    monkeypatch.setattr(bench, "save_plot", lambda result, path: path)
    monkeypatch.setattr(bench, "format_table", lambda result: "indexing table")
    monkeypatch.setattr(chroma_bench, "ChromaServer", BorrowedServer(chroma_server))
    data = cli_json(capsys, "bench", "--chroma", "200,400", "--out", str(cli_env / "bench.json"), "--json")
    chroma = data["chroma"]
    assert chroma["vectors"] == "clustered" and chroma["dim"] == 512
    assert {(r["size"], r["backend"]) for r in chroma["rows"]} == {
        (n, b) for n in (200, 400) for b in ("numpy", "chroma-embedded", "chroma-http")
    }
    assert main(["bench", "--chroma", "200", "--out", str(cli_env / "b.json")]) == 0
    assert "Chroma against exact search" in capsys.readouterr().out
    assert main(["bench", "--chroma", "many"]) == 2


def test_backend_explorer_switches_backends(embedded_store, tiny_index, tiny_embedder):
    panel = backend_explorer(tiny_embedder, {"numpy": tiny_index, "chroma": embedded_store}, k=3)
    panel.query.value = "red circle"
    from_numpy = panel.run()
    assert panel.explorer.index is tiny_index and "numpy" in panel.timing.value
    panel.backend.value = "chroma"  # changing the dropdown searches again
    assert panel.explorer.index is embedded_store and "chroma" in panel.timing.value
    assert [p.name for p in panel.last.products] == [p.name for p in from_numpy.products]
    assert len(panel.results.children) == 3
    panel.query.value = "  "
    assert panel.run() is None and "Type what you are looking for" in panel.message.value
    with pytest.raises(CourseError, match="different numbers"):
        one = ImageIndex(np.ones((1, 16)), tiny_index.products[:1], tiny_index.paths[:1], "m")
        backend_explorer(tiny_embedder, {"a": tiny_index, "b": one})
