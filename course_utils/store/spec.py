"""Choosing where an index lives: a store spec (``numpy``, ``chroma:PATH``, ``http://HOST:PORT``) and opening it.

Introduced in 09_scaling_with_a_vector_database.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .. import config
from ..errors import CourseError
from ..index import ImageIndex, VectorIndex
from ..workspace import catalog_index
from .chroma import DEFAULT_COLLECTION, ChromaIndex, chroma_settings, import_chromadb

__all__ = ["StoreSpec", "chroma_client", "open_store", "parse_store"]

DEFAULT_PORT = 8000  # what `chroma run` listens on when no port is given


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
    text = config.store(spec)
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
            path.mkdir(parents=True, exist_ok=True)  # Chroma's own error for a bad folder is an InternalError
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
) -> VectorIndex:
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
        return catalog_index(embedder)
    return ChromaIndex(chroma_client(store, create=create), collection, store=str(store), create=create)
