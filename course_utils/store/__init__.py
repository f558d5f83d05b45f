"""Where an index lives besides one NumPy file: ChromaDB (embedded or a server) and FAISS search.

:mod:`.spec` reads a store spec and opens it, :mod:`.chroma` is the Chroma collection index,
:mod:`.chroma_server` runs ``chroma run`` locally, :mod:`.faiss_search` answers searches with FAISS.
Every index here is a :class:`~course_utils.index.VectorIndex`.
"""

from .chroma import ChromaIndex, metadata_where
from .chroma_server import ChromaServer
from .faiss_search import FaissIndex, FaissSearch
from .spec import StoreSpec, chroma_client, open_store, parse_store

__all__ = [
    "ChromaIndex",
    "ChromaServer",
    "FaissIndex",
    "FaissSearch",
    "StoreSpec",
    "chroma_client",
    "metadata_where",
    "open_store",
    "parse_store",
]
