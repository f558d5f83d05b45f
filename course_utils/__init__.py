"""course_utils: the tested helpers behind the Image RAG course notebooks.

Each public helper's docstring names the notebook that introduces it.
"""

from .cascade import Cascade, get_cascade, raw_gemini_call
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
from .evaluation import evaluate_retrieval, generate_queries, load_queries, run_eval
from .grounding import check_grounding
from .index import ImageIndex
from .llm import LLMResponse, OfflineAnswerer
from .pipeline import index_folder
from .query import QueryIntent, parse_question
from .rag import ImageRAG, RAGResult, build_metadata_context
from .rerank import rerank
from .retrieval import Hit, Retrieval, retrieve
from .workspace import cache_dir, catalog_images, catalog_index

__version__ = "0.1.0"

__all__ = [
    "rerank",
    "index_folder",
    "check_grounding",
    "run_eval",
    "load_queries",
    "generate_queries",
    "evaluate_retrieval",
    "COLOR_HEX",
    "PATTERNS",
    "SHAPES",
    "CLIPEmbedder",
    "Cascade",
    "CourseError",
    "Hit",
    "ImageIndex",
    "ImageRAG",
    "LLMResponse",
    "OfflineAnswerer",
    "Product",
    "QueryIntent",
    "RAGResult",
    "Retrieval",
    "build_metadata_context",
    "cache_dir",
    "catalog_images",
    "catalog_index",
    "default_catalog",
    "get_cascade",
    "load_catalog",
    "load_clip",
    "parse_question",
    "pick_device",
    "raw_gemini_call",
    "render_catalog",
    "render_product",
    "retrieve",
    "save_catalog",
]
