"""Benchmarks: indexing throughput (:mod:`.embedding`, phone photos in :mod:`.photos`), search at
scale (:mod:`.search`), Chroma (:mod:`.chroma`) and the report (:mod:`.report`).
``python -m course_utils bench`` runs them.
"""

from .chroma import bench_chroma, format_bench
from .embedding import run_bench
from .photos import format_photo_table, run_photo_bench
from .report import format_table, save_plot

__all__ = [
    "bench_chroma",
    "format_bench",
    "format_photo_table",
    "format_table",
    "run_bench",
    "run_photo_bench",
    "save_plot",
]
