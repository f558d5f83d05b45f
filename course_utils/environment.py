"""What the setup cell of every notebook prints: versions, device, CLIP model and LLM providers.

The same on Colab and locally, so a screenshot of it tells an instructor what a student runs.
Introduced in 01_synthetic_catalog.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

from .embeddings import BUNDLED_MODEL_DIR, DEFAULT_MODEL, is_offline, pick_device, resolve_model_name


def _version(module: str) -> str:
    try:
        imported = __import__(module)
    except ImportError:
        return "not installed"
    return str(getattr(imported, "__version__", "unknown"))


def clip_model_description() -> str:
    """Which CLIP model ``load_clip()`` will use, in words."""
    name = resolve_model_name()
    if Path(name).expanduser().is_dir():
        return f"{name} (local folder)"
    if is_offline():
        return "bundled mini-CLIP (offline)"
    if name == DEFAULT_MODEL:
        fallback = " (falls back to the bundled mini-CLIP if the hub cannot be reached)"
        return name + (fallback if (BUNDLED_MODEL_DIR / "config.json").exists() else "")
    return name


def llm_description() -> str:
    """The LLM providers the cascade will try, by name only: never a key."""
    try:
        from .cascade import get_cascade
    except ImportError:
        return "offline answerer only (no provider cascade in this install)"
    infos = get_cascade(verbose=False).list_providers()
    configured = [info.display_name for info in infos if info.state == "configured"]
    if not configured:
        return "none configured"
    if configured == ["offline"]:
        return "offline answerer only (rule-based, not an LLM; add a key for real answers)"
    return ", ".join(configured)


def environment_report() -> str:
    """The setup summary as text (see :func:`report_environment`)."""
    import torch
    import transformers

    from . import __version__

    where = "Google Colab" if "google.colab" in sys.modules else "local"
    lines = [
        f"course_utils  {__version__}",
        f"Python        {platform.python_version()} ({where})",
        f"torch         {torch.__version__}",
        f"transformers  {transformers.__version__}",
        f"device        {pick_device()}",
        f"CLIP model    {clip_model_description()}",
        f"LLM           {llm_description()}",
    ]
    return "\n".join(lines)


def report_environment() -> None:
    """Print the versions (course_utils, Python, torch, transformers), the device, the CLIP model and the LLMs.

    The setup cell of every notebook calls it. Introduced in 01_synthetic_catalog.
    """
    print(environment_report())
