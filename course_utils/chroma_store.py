"""The image index in a vector database: ChromaDB, embedded in the notebook or behind a server.

:class:`ChromaIndex` answers the same questions as :class:`~course_utils.index.ImageIndex`
(``len``, ``products``, ``paths``, ``model_id``, ``check_model``, ``similarities``, ``search``,
``rows_where``), so retrieval, the hybrid planner and :class:`~course_utils.rag.ImageRAG` work with
either and never ask which. What changes is where the vectors live: in a Chroma collection
(cosine space, one record per image, the product's fields as metadata), on disk
(``chroma:PATH``, an embedded ``PersistentClient``) or on a Chroma server (``http://HOST:PORT``).

chromadb is an optional extra (``pip install "image-rag-course[chroma]"``) and is imported only
when a Chroma store is opened. Introduced in 09_scaling_with_a_vector_database.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from .catalog import Product, product_from_dict
from .embeddings import l2_normalize
from .errors import CourseError
from .index import ImageIndex

STORE_ENV = "COURSE_INDEX"
DEFAULT_COLLECTION = "course_images"
DEFAULT_PORT = 8000  # what `chroma run` listens on when no port is given
INSTALL_HINT = 'pip install "image-rag-course[chroma]"'
STORE_FORMAT = 1
_CHANGED = "The Chroma collection {name!r} changed while it was being read (another client is writing); try again."
_PRODUCT_FIELDS = ("name", "shape", "color", "color_name", "pattern", "price", "category", "description")


# --------------------------------------------------------------------------- choosing a store


@dataclass(frozen=True)
class StoreSpec:
    """Where an index lives: ``numpy`` (a file or the cached default), ``chroma`` (a folder) or ``http`` (a server)."""

    kind: str
    location: str | None = None

    def __str__(self) -> str:
        if self.kind == "http":
            return str(self.location)
        return self.kind if self.location is None else f"{self.kind}:{self.location}"


def parse_store(spec: str | StoreSpec | None = None) -> StoreSpec:
    """Read a store spec: the argument, else ``COURSE_INDEX``, else ``numpy``.

    ``numpy`` (or ``numpy:FILE.npz``), ``chroma:PATH`` or ``http://HOST:PORT`` (``https://`` too).
    """
    if isinstance(spec, StoreSpec):
        return spec
    text = (spec if spec is not None else os.environ.get(STORE_ENV, "")).strip() or "numpy"
    usage = "Use numpy, chroma:PATH (a folder on this machine) or http://HOST:PORT (a Chroma server)."
    kind, sep, rest = text.partition(":")
    if kind == "numpy":
        return StoreSpec("numpy", rest.strip() or None)
    if kind == "chroma":
        if not rest.strip():
            raise CourseError(f"The store {text!r} names no folder: write chroma:./chroma-db. {usage}")
        return StoreSpec("chroma", rest.strip())
    if kind in ("http", "https"):
        url = urlsplit(text)
        if not url.hostname or url.path not in ("", "/") or url.query:
            raise CourseError(f"The store {text!r} is not a server address like http://127.0.0.1:8000. {usage}")
        try:
            port = url.port or DEFAULT_PORT
        except ValueError:
            raise CourseError(f"The store {text!r} has an invalid port. {usage}") from None
        return StoreSpec("http", f"{url.scheme}://{url.hostname}:{port}")
    raise CourseError(f"Unknown index store {text!r}. {usage}")


def import_chromadb() -> Any:
    """The ``chromadb`` module, or a CourseError that says how to install it."""
    try:
        import chromadb
    except ImportError:
        raise CourseError(
            f"The Chroma backend needs the chromadb package, which the core install leaves out: {INSTALL_HINT}"
        ) from None
    return chromadb


def chroma_settings() -> Any:
    """Client settings for every Chroma client the course makes: telemetry off, nothing leaves the machine."""
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False)


def chroma_client(spec: str | StoreSpec, create: bool = True) -> Any:
    """A Chroma client for ``chroma:PATH`` (embedded, on disk) or ``http://HOST:PORT`` (a server)."""
    store = parse_store(spec)
    if store.kind == "numpy":
        raise CourseError("The numpy store is a file, not a database: use chroma:PATH or http://HOST:PORT.")
    chromadb = import_chromadb()
    if store.kind == "chroma":
        path = Path(store.location).expanduser()
        if not create and not (path / "chroma.sqlite3").is_file():
            raise CourseError(
                f"No Chroma database in {path}. Build one with "
                f"`python -m course_utils index IMAGES --store chroma:{store.location}`."
            )
        try:
            return chromadb.PersistentClient(path=str(path), settings=chroma_settings())
        except (OSError, ValueError) as exc:
            raise CourseError(f"Cannot open a Chroma database in {path}: {exc}") from None
    url = urlsplit(store.location)
    try:
        return chromadb.HttpClient(
            host=url.hostname, port=url.port, ssl=url.scheme == "https", settings=chroma_settings()
        )
    except (ValueError, ConnectionError, OSError):
        raise CourseError(
            f"Cannot reach a Chroma server at {store.location}. Start one with "
            f"`chroma run --host {url.hostname} --port {url.port} --path ./chroma-data`, or check the address."
        ) from None


def open_store(
    spec: str | StoreSpec | None = None,
    *,
    create: bool = False,
    collection: str = DEFAULT_COLLECTION,
    embedder: Any = None,
) -> ImageIndex | ChromaIndex:
    """Open the image index named by ``spec`` (argument, else ``COURSE_INDEX``, else ``numpy``).

    ``numpy:FILE`` loads an index file; plain ``numpy`` is the cached index of the default
    catalog for ``embedder``. ``chroma:PATH`` and ``http://HOST:PORT`` open the Chroma collection
    ``collection``; with ``create=False`` a missing or empty one is a CourseError saying how to
    build it, with ``create=True`` it is made empty, ready for :meth:`ChromaIndex.build`.
    Introduced in 09_scaling_with_a_vector_database.
    """
    store = parse_store(spec)
    if store.kind == "numpy":
        if store.location:
            return ImageIndex.load(store.location)
        if embedder is None:
            raise CourseError("The default NumPy index is built for a CLIP model: pass embedder=load_clip().")
        from .workspace import catalog_index

        return catalog_index(embedder)
    return ChromaIndex(chroma_client(store, create=create), collection, store=str(store), create=create)


# --------------------------------------------------------------------------- the index


def content_id(path: str | os.PathLike) -> str:
    """The record id of an image: the SHA-256 of its bytes, so the same image always gets the same id."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise CourseError(f"Cannot read image {path}: {exc.strerror or exc}.") from None


def product_metadata(product: Product, path: str | os.PathLike, position: int) -> dict[str, Any]:
    """The Chroma metadata of one image: every product field, its path, and its row position."""
    data: dict[str, Any] = {field: getattr(product, field) for field in _PRODUCT_FIELDS}
    if product.price is None:
        del data["price"]  # a photo without a catalog: no price, so no price filter matches it
    else:
        data["price"] = float(product.price)  # Chroma compares numbers by type: prices are always floats
    data["path"] = os.path.abspath(path)  # other processes (the CLI, a server's other users) run elsewhere
    data["position"] = int(position)
    return data


def metadata_where(
    categories: Iterable[str] | None = None, min_price: float | None = None, max_price: float | None = None
) -> dict | None:
    """The Chroma ``where=`` filter for the hybrid planner's rules (None: no filter).

    Introduced in 09_scaling_with_a_vector_database.
    """
    clauses: list[dict] = []
    if categories:
        clauses.append({"category": {"$in": sorted(categories)}})
    if min_price is not None:
        clauses.append({"price": {"$gte": float(min_price)}})
    if max_price is not None:
        clauses.append({"price": {"$lte": float(max_price)}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def batch_slices(n: int, size: int) -> Iterable[slice]:
    """Slices of at most ``size`` rows covering ``n``: Chroma refuses batches above the client's maximum."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


class ChromaIndex:
    """An image index stored in a Chroma collection, with the interface of :class:`ImageIndex`.

    Rows are the images in the order they were indexed (a ``position`` stored with each record);
    the ids are the SHA-256 of each image file, so re-indexing the same images updates records
    instead of adding copies. The model id and vector size live in the collection's metadata.
    Introduced in 09_scaling_with_a_vector_database.
    """

    def __init__(self, client: Any, name: str = DEFAULT_COLLECTION, *, store: str = "", create: bool = True) -> None:
        self.client = client
        self.name = name
        self.store = store or "chroma"
        self.skipped: list[dict] = []  # as ImageIndex: the CLI reports it
        self.last_build: dict[str, int] = {}
        self._rows: tuple[list[str], list[Product], list[str], dict[str, int]] | None = None
        self._positions_cache: dict[str, int] = {}
        self.collection = self._open(create)
        if not create and not self.model_id:
            raise CourseError(
                f"The Chroma collection {name!r} at {self.store} is empty. Build it with "
                f"`python -m course_utils index IMAGES --store {self.store}`."
            )

    def _open(self, create: bool) -> Any:
        from chromadb.errors import ChromaError, NotFoundError

        try:
            if create:
                # cosine space: Chroma's distance is then 1 - cosine similarity
                return self.client.get_or_create_collection(
                    self.name, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
                )
            return self.client.get_collection(self.name, embedding_function=None)
        except NotFoundError:
            raise CourseError(
                f"No collection {self.name!r} at {self.store}. Build it with "
                f"`python -m course_utils index IMAGES --store {self.store}`."
            ) from None
        except ChromaError as exc:
            raise CourseError(f"Chroma refused the collection {self.name!r}: {exc}") from None

    # ------------------------------------------------------------------ what ImageIndex has

    def __len__(self) -> int:
        return len(self._load()[0])

    def __repr__(self) -> str:
        return f"ChromaIndex({len(self)} images at {self.store}, collection={self.name!r}, model_id={self.model_id!r})"

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self.collection.metadata or {})

    @property
    def model_id(self) -> str | None:
        """The CLIP model that made the stored vectors (None while the collection is empty)."""
        return self.metadata.get("model_id")

    @property
    def dim(self) -> int | None:
        dim = self.metadata.get("dim")
        return None if dim is None else int(dim)

    @property
    def ids(self) -> list[str]:
        return list(self._load()[0])

    @property
    def products(self) -> list[Product]:
        return self._load()[1]

    @property
    def paths(self) -> list[str]:
        return self._load()[2]

    def check_model(self, model_id: str) -> None:
        """Refuse query vectors from another model, as :meth:`ImageIndex.check_model` does."""
        if self.model_id is None:
            raise CourseError(
                f"The Chroma collection {self.name!r} at {self.store} is empty: index images into it first."
            )
        if model_id != self.model_id:
            raise CourseError(
                f"This index was built with model {self.model_id!r} but the query uses {model_id!r}. "
                "Rebuild the index with the query's model (or load that model)."
            )

    def similarities(self, query_vector: np.ndarray) -> np.ndarray:
        """Cosine similarity of one query to every image, in row order (the database ranks them all)."""
        query = self._query(query_vector)
        for attempt in range(2):
            n = len(self)
            found = self.collection.query(query_embeddings=[query], n_results=n, include=["distances"])
            rows = self._rows_of(found["ids"][0], refresh=attempt == 0)
            if rows is not None:
                break
        else:
            raise CourseError(_CHANGED.format(name=self.name))
        scores = np.full(n, np.nan, dtype=np.float32)
        scores[rows] = 1.0 - np.asarray(found["distances"][0], dtype=np.float32)
        missing = np.flatnonzero(np.isnan(scores))
        if missing.size:
            # approximate search may leave a few rows out of a "return everything" query: score those exactly
            ids = self._load()[0]
            got = self.collection.get(ids=[ids[i] for i in missing], include=["embeddings"])
            vectors = dict(zip(got["ids"], np.asarray(got["embeddings"], dtype=np.float32), strict=True))
            for i in missing:
                scores[i] = float(l2_normalize(vectors[ids[i]]) @ query) if ids[i] in vectors else -1.0
        return scores

    def search(self, query_vector: np.ndarray, k: int = 3) -> list[tuple[int, float]]:
        """The ``k`` most similar images as ``(row, similarity)`` pairs, best first (Chroma's HNSW search)."""
        if k <= 0:
            raise CourseError(f"k must be at least 1, got {k}.")
        query = self._query(query_vector)
        for attempt in range(2):
            found = self.collection.query(query_embeddings=[query], n_results=min(k, len(self)), include=["distances"])
            rows = self._rows_of(found["ids"][0], refresh=attempt == 0)
            if rows is not None:
                break
        else:
            raise CourseError(_CHANGED.format(name=self.name))
        return [(row, 1.0 - float(d)) for row, d in zip(rows, found["distances"][0], strict=True)]

    def rows_where(
        self,
        categories: frozenset[str] | None = None,
        min_price: float | None = None,
        max_price: float | None = None,
    ) -> list[int]:
        """Rows whose metadata passes the filters, found by the database with a ``where=`` filter."""
        where = metadata_where(categories, min_price, max_price)
        if where is None:
            return list(range(len(self)))
        for attempt in range(2):
            rows = self._rows_of(self.collection.get(where=where, include=[])["ids"], refresh=attempt == 0)
            if rows is not None:
                return sorted(rows)
        raise CourseError(_CHANGED.format(name=self.name))

    # ------------------------------------------------------------------ writing

    def add(
        self,
        products: Sequence[Product],
        paths: Sequence[str | os.PathLike],
        embeddings: np.ndarray,
        *,
        model_id: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[str]:
        """Upsert images with their products and vectors; the same image twice stays one record.

        ``model_id`` (the embedder's) is required while the collection is empty and must match the
        stored one afterwards. Returns the record ids (SHA-256 of each image unless ``ids`` given).
        """
        vectors = self._check_rows(products, paths, embeddings)
        model_id = self._check_writer_model(model_id, vectors.shape[1])
        ids = list(ids) if ids is not None else [content_id(p) for p in paths]
        _refuse_duplicates(ids, products)
        positions = self._positions_for(ids)
        metadatas = [product_metadata(p, path, pos) for p, path, pos in zip(products, paths, positions, strict=True)]
        self._write_meta(model_id, vectors.shape[1])
        self._upsert(ids, vectors, metadatas)
        self._rows = None
        return ids

    def build(
        self,
        products: Sequence[Product],
        paths: Sequence[str | os.PathLike],
        embedder: Any,
        batch_size: int | None = None,
        prune: bool = True,
    ) -> ChromaIndex:
        """Make the collection hold exactly these images, embedded by ``embedder``; returns self.

        Only images not yet stored (new content) are embedded, by the course's pipeline
        (:func:`course_utils.pipeline.embed_images`); known ones get their metadata refreshed (a new
        price, say). Files that are not usable images, and byte-for-byte copies of an earlier
        image, are left out and listed in ``skipped``. With ``prune`` (the default) records of
        images no longer in the catalog are deleted and a collection built with another model is
        rebuilt from scratch, as ``ImageIndex.build`` + ``save`` would overwrite an index file.
        """
        from .pipeline import embed_images

        products, paths = list(products), [str(p) for p in paths]
        if len(products) != len(paths):
            raise CourseError(f"{len(products)} products but {len(paths)} image paths: give one image per product.")
        if not products:
            raise CourseError("Nothing to index: give at least one product with its image.")
        self.skipped, ids, first = [], [], {}
        for path in paths:
            record = content_id(path)
            if record in first:
                self.skipped.append({"path": path, "reason": f"the same image as {Path(first[record]).name}"})
                record = None  # a photo folder often holds copies: one record per picture
            else:
                first[record] = path
            ids.append(record)
        if self.model_id not in (None, embedder.model_id):
            if not prune:
                self._check_writer_model(embedder.model_id, None)
            self.reset()
        wanted = [record for record in ids if record is not None]
        stored = set(self.collection.get(ids=wanted, include=[])["ids"]) if self.model_id else set()
        new_rows = [i for i, record in enumerate(ids) if record is not None and record not in stored]
        old_rows = [i for i, record in enumerate(ids) if record in stored]
        # a rebuild numbers the rows in catalog order; a merge keeps known rows and appends new ones
        positions = list(range(len(ids))) if prune else self._positions_for(ids)
        metadatas = [product_metadata(p, path, pos) for p, path, pos in zip(products, paths, positions, strict=True)]
        embedded = 0
        if new_rows:
            result = embed_images(embedder, [paths[i] for i in new_rows], batch_size=batch_size, cache=False)
            self.skipped += result.skipped
            kept = [new_rows[j] for j in result.kept]
            if kept:
                self._write_meta(embedder.model_id, result.vectors.shape[1])
                self._upsert([ids[i] for i in kept], result.vectors, [metadatas[i] for i in kept])
            embedded = len(kept)
        if not embedded and not old_rows:
            first_skip = f" First: {self.skipped[0]['path']}: {self.skipped[0]['reason']}." if self.skipped else ""
            raise CourseError(
                f"None of the {len(paths)} image(s) could be used, so there is nothing to index.{first_skip}"
            )
        for part in batch_slices(len(old_rows), self._batch_size()):
            rows = old_rows[part]
            self.collection.update(ids=[ids[i] for i in rows], metadatas=[metadatas[i] for i in rows])
        removed = 0
        if prune:
            keep = set(wanted)
            stale = [record for record in self.collection.get(include=[])["ids"] if record not in keep]
            for part in batch_slices(len(stale), self._batch_size()):
                self.collection.delete(ids=stale[part])
            removed = len(stale)
        self._rows = None
        self.last_build = {"embedded": embedded, "updated": len(old_rows), "removed": removed}
        return self

    def reset(self) -> None:
        """Delete the collection and start an empty one (same name)."""
        self.client.delete_collection(self.name)
        self.collection = self._open(create=True)
        self._rows = None

    def refresh(self) -> None:
        """Forget the cached rows and collection metadata (another client may have written)."""
        self.collection = self._open(create=False)
        self._rows = None

    # ------------------------------------------------------------------ plumbing

    def _query(self, query_vector: np.ndarray) -> np.ndarray:
        query = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        if self.dim is None or len(self) == 0:
            raise CourseError(f"The Chroma collection {self.name!r} at {self.store} is empty: index images first.")
        if query.shape[0] != self.dim:
            raise CourseError(f"Query vector has {query.shape[0]} numbers but the index stores {self.dim}.")
        return l2_normalize(query)

    def _load(self, refresh: bool = False) -> tuple[list[str], list[Product], list[str], dict[str, int]]:
        """Ids, products and paths in row order (sorted by stored position), read once and cached."""
        if self._rows is None or refresh:
            got = self.collection.get(include=["metadatas"])
            records = sorted(zip(got["ids"], got["metadatas"], strict=True), key=lambda r: (r[1]["position"], r[0]))
            ids = [r[0] for r in records]
            products = [_product_from_metadata(meta, i) for i, (_, meta) in enumerate(records)]
            self._positions_cache = {record: int(meta["position"]) for record, meta in records}
            self._rows = (ids, products, [r[1]["path"] for r in records], {record: i for i, record in enumerate(ids)})
        return self._rows

    def _positions_for(self, ids: Sequence[str]) -> list[int]:
        """Stored positions for known ids, the next free ones (in order) for new ids."""
        self._load(refresh=True)
        known = self._positions_cache
        next_free = 1 + max(known.values(), default=-1)
        positions = []
        for record in ids:
            if record in known:
                positions.append(known[record])
            else:
                positions.append(next_free)
                next_free += 1
        return positions

    def _rows_of(self, ids: Sequence[str], refresh: bool) -> list[int] | None:
        """Row numbers of record ids; None (after re-reading the rows) when one is new to this client."""
        row = self._load()[3]
        if all(record in row for record in ids):
            return [row[record] for record in ids]
        if refresh:
            self.refresh()
        return None

    def _check_rows(self, products: Sequence[Product], paths: Sequence, embeddings: np.ndarray) -> np.ndarray:
        vectors = np.asarray(embeddings, dtype=np.float32)
        if vectors.ndim != 2 or not (len(products) == len(paths) == len(vectors)):
            raise CourseError("embeddings, products and paths must have one row/entry per image.")
        if not len(vectors):
            raise CourseError("Nothing to add: give at least one product with its image and vector.")
        return l2_normalize(vectors)

    def _check_writer_model(self, model_id: str | None, dim: int | None) -> str:
        stored = self.model_id
        if stored and model_id and model_id != stored and len(self):
            raise CourseError(
                f"The collection {self.name!r} holds vectors from {stored!r}; these come from {model_id!r}. "
                "Use one model per collection (another collection name, or build() to replace it)."
            )
        model_id = model_id or stored
        if not model_id:
            raise CourseError("Say which model made these vectors: add(..., model_id=embedder.model_id).")
        if dim is not None and self.dim is not None and len(self) and dim != self.dim:
            raise CourseError(f"These vectors have {dim} numbers but the collection stores {self.dim}.")
        return model_id

    def _write_meta(self, model_id: str, dim: int) -> None:
        wanted = {"model_id": model_id, "dim": int(dim), "course_format": STORE_FORMAT}
        if self.metadata != wanted:
            self.collection.modify(metadata=wanted)  # modify replaces the whole metadata dict

    def _batch_size(self) -> int:
        return int(self.client.get_max_batch_size())

    def _upsert(self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[Mapping[str, Any]]) -> None:
        for part in batch_slices(len(ids), self._batch_size()):
            self.collection.upsert(ids=list(ids[part]), embeddings=vectors[part], metadatas=list(metadatas[part]))


def _product_from_metadata(meta: Mapping[str, Any], position: int) -> Product:
    """The product a record describes, validated as a catalog entry (records may come from other clients)."""
    if "price" not in meta:  # an image known only by its file name
        return Product.from_file_name(str(meta.get("name", "")))
    return product_from_dict({f: meta[f] for f in _PRODUCT_FIELDS if f in meta}, position)


def _refuse_duplicates(ids: Sequence[str], products: Sequence[Product]) -> None:
    first: dict[str, int] = {}
    for i, record in enumerate(ids):
        if record in first:
            raise CourseError(
                f"{products[first[record]].name!r} and {products[i].name!r} have byte-identical images; "
                "the index keys images by their content, so give each product its own picture."
            )
        first[record] = i


# --------------------------------------------------------------------------- a local server


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def chroma_command() -> list[str]:
    """How to run the ``chroma`` CLI that ships in the chromadb wheel, from this Python's environment."""
    import_chromadb()
    beside = Path(sys.executable).with_name("chroma")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("chroma")
    if found:
        return [found]
    # a venv whose scripts folder is not on PATH: the same entry point, called through this Python
    return [sys.executable, "-c", "import sys; from chromadb.cli.cli import app; sys.argv[0] = 'chroma'; app()"]


class ChromaServer:
    """A ``chroma run`` server on this machine, for the notebook and the tests; a context manager.

    ``ChromaServer(path).start()`` launches ``chroma run --host 127.0.0.1 --port PORT --path PATH``,
    waits until its heartbeat answers, and ``.url`` is then what ``--store`` takes. ``.stop()``
    (or leaving the ``with`` block) ends it; ``.restart()`` keeps the port and the data folder.
    Introduced in 09_scaling_with_a_vector_database.
    """

    def __init__(
        self, path: str | os.PathLike, host: str = "127.0.0.1", port: int | None = None, timeout: float = 90.0
    ) -> None:
        self.path = Path(path)
        self.host = host
        self.port = port or free_port(host)
        self.timeout = timeout
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"ChromaServer({self.url}, path={str(self.path)!r}, {state})"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def heartbeat(self) -> bool:
        """True when the server answers ``GET /api/v2/heartbeat``."""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> ChromaServer:
        if self.running:
            return self
        self.path.mkdir(parents=True, exist_ok=True)
        self._log = tempfile.TemporaryFile()
        # the server reads the same switch as the client: no usage reports leave the machine
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
        command = [*chroma_command(), "run", "--host", self.host, "--port", str(self.port), "--path", str(self.path)]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        atexit.register(self.stop)  # a notebook kernel that exits (or a failed cell) leaves no server behind
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.heartbeat():
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        log = self.log()
        self.stop()
        raise CourseError(f"The Chroma server did not start at {self.url} within {self.timeout:.0f} s:\n{log[-2000:]}")

    def log(self) -> str:
        """What the server printed so far."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 15 s); safe to call twice."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self.process = None
        atexit.unregister(self.stop)

    def restart(self) -> ChromaServer:
        self.stop()
        return self.start()

    def __enter__(self) -> ChromaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
