"""Indexing image folders: scanning, decoding in parallel, the embedding cache, the batch runner.

One module per job, in the order the data flows: :mod:`.folders` (which files), :mod:`.workers`
(read, hash and decode in parallel), :mod:`.transforms` (the pixel recipe), :mod:`.cache`
(embeddings on disk), :mod:`.embed` (batches through the model) and :mod:`.build` (into an
index); :mod:`.ray_engine` does the embedding on a Ray cluster.
"""

from .build import ENGINES, build_index, index_files, index_folder
from .cache import EmbeddingCache
from .embed import EmbedResult, embed_files
from .folders import IMAGE_EXTENSIONS, folder_inputs, scan_folder
from .ray_engine import embed_files_ray, ray_available
from .transforms import PixelRecipe
from .workers import PARALLEL, read_and_hash

__all__ = [
    "ENGINES",
    "IMAGE_EXTENSIONS",
    "PARALLEL",
    "EmbedResult",
    "EmbeddingCache",
    "PixelRecipe",
    "build_index",
    "embed_files",
    "embed_files_ray",
    "folder_inputs",
    "index_files",
    "index_folder",
    "ray_available",
    "read_and_hash",
    "scan_folder",
]
