"""The image index in a vector database: a ChromaDB collection, embedded or behind a server.

:class:`ChromaIndex` is a :class:`~course_utils.index.VectorIndex`, like
:class:`~course_utils.index.ImageIndex`, so retrieval, the hybrid planner and
:class:`~course_utils.rag.ImageRAG` work with either and never ask which. What changes is where the
vectors live: in a Chroma collection (cosine space, one record per image, the product's fields as
metadata), on disk (``chroma:PATH``, an embedded ``PersistentClient``) or on a Chroma server
(``http://HOST:PORT``).

chromadb is an optional extra (``pip install "image-rag-course[chroma]"``) and is imported only
when a Chroma store is opened. Introduced in 09_scaling_with_a_vector_database.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..catalog import Product, product_from_dict
from ..embeddings import l2_normalize
from ..errors import CourseError
from ..images import UnusableImage
from ..index import MetadataFilter, check_k, check_model, check_query_vector
from ..indexing import embed_files, read_and_hash

__all__ = [
    "DEFAULT_COLLECTION",
    "ChromaIndex",
    "batch_slices",
    "chroma_settings",
    "content_id",
    "import_chromadb",
    "metadata_where",
    "product_metadata",
]

DEFAULT_COLLECTION = "course_images"
INSTALL_HINT = 'pip install "image-rag-course[chroma]"'
STORE_FORMAT = 1
_CHANGED = "The Chroma collection {name!r} changed while it was being read (another client is writing); try again."
_PRODUCT_FIELDS = ("name", "shape", "color", "color_name", "pattern", "price", "category", "description")


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


def content_id(path: str | os.PathLike) -> str:
    """The record id of an image: the hash of its bytes (the embedding cache's key), so the same
    image always gets the same id.
    """
    try:
        return read_and_hash(Path(path))[1]
    except UnusableImage as exc:
        raise CourseError(f"Cannot read image {path}: {exc.reason}.") from None


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


def metadata_where(rules: MetadataFilter) -> dict | None:
    """The Chroma ``where=`` filter for the hybrid planner's rules (None: no filter).

    Introduced in 09_scaling_with_a_vector_database.
    """
    clauses: list[dict] = []
    if rules.categories:
        clauses.append({"category": {"$in": sorted(rules.categories)}})
    if rules.min_price is not None:
        clauses.append({"price": {"$gte": float(rules.min_price)}})
    if rules.max_price is not None:
        clauses.append({"price": {"$lte": float(rules.max_price)}})
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

    def _open(self, create: bool, name: str | None = None) -> Any:
        from chromadb.errors import ChromaError, NotFoundError

        try:
            if create:
                # cosine space: Chroma's distance is then 1 - cosine similarity
                return self.client.get_or_create_collection(
                    name or self.name, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
                )
            return self.client.get_collection(name or self.name, embedding_function=None)
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
        check_model(self.model_id, model_id)

    def similarities(self, query_vector: np.ndarray) -> np.ndarray:
        """Cosine similarity of one query to every image, in row order (the database ranks them all)."""
        query = self._query(query_vector)

        def everything() -> tuple[list[str], Any]:
            found = self.collection.query(query_embeddings=[query], n_results=len(self), include=["distances"])
            return found["ids"][0], found

        rows, found = self._read_rows(everything)
        n = len(self)
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
        k = check_k(k)
        query = self._query(query_vector)

        def nearest() -> tuple[list[str], Any]:
            found = self.collection.query(query_embeddings=[query], n_results=min(k, len(self)), include=["distances"])
            return found["ids"][0], found

        rows, found = self._read_rows(nearest)
        return [(row, 1.0 - float(d)) for row, d in zip(rows, found["distances"][0], strict=True)]

    def rows_where(self, rules: MetadataFilter) -> list[int]:
        """Rows whose metadata passes ``rules``, found by the database with a ``where=`` filter."""
        where = metadata_where(rules)
        if where is None:
            return list(range(len(self)))
        rows, _ = self._read_rows(lambda: (self.collection.get(where=where, include=[])["ids"], None))
        return sorted(rows)

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

        Every file is read and hashed once, by the course's indexing pipeline
        (:func:`course_utils.indexing.embed_files`), whose content hash is the record id; only
        images the collection does not hold yet are decoded and embedded, and known records get
        their metadata refreshed (a new price, say). Files that are not usable images, and byte-for-byte copies
        of an earlier image, are left out and listed in ``skipped``. With ``prune`` (the default)
        records of images no longer in the catalog are deleted, and a collection built with another
        model is replaced by a new one, filled under a temporary name first. Nothing is written
        before every image was read and embedded, so a run that fails leaves the collection as it was.
        """
        products, paths = list(products), [str(p) for p in paths]
        if len(products) != len(paths):
            raise CourseError(f"{len(products)} products but {len(paths)} image paths: give one image per product.")
        if not products:
            raise CourseError("Nothing to index: give at least one product with its image.")
        if self.model_id not in (None, embedder.model_id) and not prune:
            self._check_writer_model(embedder.model_id, None)
        same_model = self.model_id in (None, embedder.model_id)
        stored = set(self.collection.get(include=[])["ids"]) if same_model and self.model_id else set()
        result = embed_files(embedder, paths, batch_size=batch_size, known=stored)
        self.skipped = list(result.skipped)
        vector_of = {i: result.vectors[j] for j, i in enumerate(result.kept)}
        rows, ids, first = [], [], {}
        for i in sorted([*result.kept, *result.known]):
            record = result.digests[i]
            if record in first:  # a photo folder often holds copies: one record per picture
                self.skipped.append({"path": paths[i], "reason": f"the same image as {Path(first[record]).name}"})
                continue
            first[record] = paths[i]
            rows.append(i)
            ids.append(record)
        if not rows:
            first_skip = f" First: {self.skipped[0]['path']}: {self.skipped[0]['reason']}." if self.skipped else ""
            raise CourseError(
                f"None of the {len(paths)} image(s) could be used, so there is nothing to index.{first_skip}"
            )
        # a rebuild numbers the rows in catalog order; a merge keeps known rows and appends new ones
        positions = list(range(len(ids))) if prune else self._positions_for(ids)
        metadatas = [product_metadata(products[i], paths[i], pos) for i, pos in zip(rows, positions, strict=True)]
        if not same_model:
            replaced = self.collection.count()
            vectors = np.stack([vector_of[i] for i in rows])
            self._replace_collection(embedder.model_id, embedder.dim, ids, vectors, metadatas)
            self.last_build = {"embedded": result.embedded, "updated": 0, "removed": replaced}
            return self
        new = [j for j, record in enumerate(ids) if record not in stored]
        old = [j for j, record in enumerate(ids) if record in stored]
        if new:
            self._write_meta(embedder.model_id, embedder.dim)
            vectors = np.stack([vector_of[rows[j]] for j in new])
            self._upsert([ids[j] for j in new], vectors, [metadatas[j] for j in new])
        for part in batch_slices(len(old), self._batch_size()):
            chunk = old[part]
            self.collection.update(ids=[ids[j] for j in chunk], metadatas=[metadatas[j] for j in chunk])
        removed = 0
        if prune:
            keep = set(ids)
            stale = [record for record in self.collection.get(include=[])["ids"] if record not in keep]
            for part in batch_slices(len(stale), self._batch_size()):
                self.collection.delete(ids=stale[part])
            removed = len(stale)
        self._rows = None
        self.last_build = {"embedded": result.embedded, "updated": len(old), "removed": removed}
        return self

    def _replace_collection(
        self, model_id: str, dim: int, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[Mapping[str, Any]]
    ) -> None:
        """Fill a new collection under a temporary name, then give it this collection's name.

        A failure while writing (a server gone, a full disk, Ctrl-C) deletes the new collection and
        leaves the old one as it was; readers miss the collection only between the delete and the rename.
        """
        old, staging = self.collection, f"{self.name}-new-{secrets.token_hex(4)}"
        self.collection = self._open(create=True, name=staging)
        try:
            self._write_meta(model_id, dim)
            self._upsert(ids, vectors, metadatas)
        except BaseException:
            self.collection = old
            with contextlib.suppress(Exception):  # the error that stopped the writes is the one to report
                self.client.delete_collection(staging)
            raise
        self.client.delete_collection(self.name)
        self.collection.modify(name=self.name)
        self.collection = self._open(create=False)
        self._rows = None

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
        if self.dim is None or len(self) == 0:
            raise CourseError(f"The Chroma collection {self.name!r} at {self.store} is empty: index images first.")
        return check_query_vector(query_vector, self.dim)

    def _read_rows(self, read: Callable[[], tuple[list[str], Any]]) -> tuple[list[int], Any]:
        """Run ``read`` (which returns record ids and the raw answer) and map the ids to row numbers.

        Another client may have added records since the rows were cached: then the rows are read
        again and ``read`` is run once more; a collection still changing after that is an error.
        """
        for attempt in range(2):
            ids, answer = read()
            rows = self._rows_of(ids, refresh=attempt == 0)
            if rows is not None:
                return rows, answer
        raise CourseError(_CHANGED.format(name=self.name))

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
