"""course_utils: the tested helpers behind the Image RAG course notebooks.

Each public helper's docstring names the notebook that introduces it. The concepts the notebooks
teach are flat modules (catalog, embeddings, index, retrieval, prompts, rag, ...); the machinery
lives in subpackages (``indexing``, ``llm``, ``store``, ``bench``, ``mini_clip``). The names below
are the ones the notebooks use most; each is importable from here and from its own module.
"""

from . import config
from .catalog import (
    COLOR_HEX,
    PATTERNS,
    SHAPES,
    Product,
    default_catalog,
    load_catalog,
    render_catalog,
    render_product,
    save_catalog,
)
from .embeddings import CLIPEmbedder, load_clip, pick_device
from .errors import CourseError
from .evaluation import evaluate_retrieval, load_queries, run_eval
from .grounding import check_grounding
from .index import ImageIndex, MetadataFilter, VectorIndex
from .indexing import build_index, index_folder
from .llm import LLM, Cascade, LLMResponse, OfflineAnswerer, get_cascade, raw_gemini_call
from .query import QueryIntent, generate_queries, parse_question
from .rag import ImageRAG, RAGResult, build_metadata_context
from .rerank import rerank
from .retrieval import Hit, Retrieval, retrieve, retrieve_by_image
from .workspace import catalog_images, catalog_index, report_environment

__version__ = config.VERSION

__all__ = [
    "COLOR_HEX",
    "LLM",
    "PATTERNS",
    "SHAPES",
    "CLIPEmbedder",
    "Cascade",
    "CourseError",
    "Hit",
    "ImageIndex",
    "ImageRAG",
    "LLMResponse",
    "MetadataFilter",
    "OfflineAnswerer",
    "Product",
    "QueryIntent",
    "RAGResult",
    "Retrieval",
    "VectorIndex",
    "build_index",
    "build_metadata_context",
    "catalog_images",
    "catalog_index",
    "check_grounding",
    "config",
    "default_catalog",
    "evaluate_retrieval",
    "generate_queries",
    "get_cascade",
    "index_folder",
    "load_catalog",
    "load_clip",
    "load_queries",
    "parse_question",
    "pick_device",
    "raw_gemini_call",
    "render_catalog",
    "render_product",
    "report_environment",
    "rerank",
    "retrieve",
    "retrieve_by_image",
    "run_eval",
    "save_catalog",
]
