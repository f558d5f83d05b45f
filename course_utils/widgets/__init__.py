"""Interactive panels for the notebooks, built from plain ipywidgets (7.7 on Colab, or 8.x).

Each function returns a small panel object: ``.widget`` is what you ``display``, the controls are
attributes (``.query``, ``.k``, ``.button``, ...), ``.message`` shows friendly messages and
``.last`` holds the last result. ``.run()`` does what the button does, so a notebook's self-check
cell (and the tests) can drive a panel without a browser. Introduced in 01_synthetic_catalog.
"""

from .answers import (
    AblationPanel,
    AskPanel,
    GenerationPanel,
    PlanComparisonPanel,
    ablation_panel,
    ask_panel,
    generation_panel,
    plan_comparison_panel,
    provider_options,
)
from .base import AUTO, THUMBNAIL, Panel, PhotoQuery, figure_png, png_bytes, uploaded_files
from .search import (
    BackendExplorer,
    ProductDesigner,
    RetrievalExplorer,
    SimilarityExplorer,
    backend_explorer,
    product_designer,
    retrieval_explorer,
    similarity_explorer,
)

__all__ = [
    "AUTO",
    "THUMBNAIL",
    "ablation_panel",
    "AblationPanel",
    "ask_panel",
    "AskPanel",
    "backend_explorer",
    "BackendExplorer",
    "figure_png",
    "generation_panel",
    "GenerationPanel",
    "Panel",
    "PhotoQuery",
    "plan_comparison_panel",
    "PlanComparisonPanel",
    "png_bytes",
    "product_designer",
    "ProductDesigner",
    "provider_options",
    "retrieval_explorer",
    "RetrievalExplorer",
    "similarity_explorer",
    "SimilarityExplorer",
    "uploaded_files",
]
