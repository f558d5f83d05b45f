"""Refusal: when is the best hit good enough for the catalog to "have" what was asked?

CLIP similarities have no absolute scale (0.3 is a strong match for one model and a weak one for
another), so the threshold is calibrated per catalog and model, on queries generated from the
catalog's own labels: some it has, some it does not. Introduced in 08_evaluating_image_rag.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from .catalog import SHAPES
from .query import generate_queries

__all__ = ["calibrate_refusal", "choose_threshold", "match_threshold", "refusal_calibration"]


def choose_threshold(present: Sequence[float], absent: Sequence[float]) -> dict[str, float]:
    """The best-hit similarity above which a query counts as "in the catalog".

    Picks the cut with the fewest false accepts + false rejects on labelled present/absent
    queries (the middle one when several tie).
    """
    present, absent = np.sort(np.asarray(present, float)), np.sort(np.asarray(absent, float))
    if not len(present) or not len(absent):
        raise ValueError("calibration needs both present and absent queries")
    values = np.unique(np.concatenate([present, absent]))
    cuts = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    errors = [np.mean(present < c) + np.mean(absent >= c) for c in cuts]
    best = np.flatnonzero(np.isclose(errors, min(errors)))
    threshold = float(cuts[best[len(best) // 2]])  # the middle one of the best cuts
    return {
        "threshold": threshold,
        "false_accept": float(np.mean(absent >= threshold)),
        "false_reject": float(np.mean(present < threshold)),
        "n_present": int(len(present)),
        "n_absent": int(len(absent)),
    }


def calibrate_refusal(index: Any, embedder: Any) -> dict[str, float] | None:
    """Calibrate the "nothing matches" threshold for this catalog and model from generated queries.

    Category queries are left out: a picture does not show its category. Returns None for a
    catalog whose products have no known attributes (a plain photo folder).
    Introduced in 08_evaluating_image_rag.
    """
    if not index.products or any(p.shape not in SHAPES or p.price is None for p in index.products):
        return None
    queries = [q for q in generate_queries(index.products) if q["type"] != "category"]
    vectors = embedder.embed_texts([q["query"] for q in queries])
    best = [float(index.similarities(v).max()) for v in vectors]
    present = [b for b, q in zip(best, queries, strict=True) if q["relevant"]]
    absent = [b for b, q in zip(best, queries, strict=True) if not q["relevant"]]
    return choose_threshold(present, absent) if present and absent else None


# One calibration per (index object, model): computing it embeds ~150 generated queries, and a
# notebook retrieves many times from the same index. Entries die with their index.
_CALIBRATIONS: dict[tuple[int, str, int], tuple[weakref.ref, dict[str, float] | None]] = {}


def refusal_calibration(index: Any, embedder: Any) -> dict[str, float] | None:
    """:func:`calibrate_refusal` for this index and model, computed once and then remembered."""
    key = (id(index), embedder.model_id, len(index))
    known = _CALIBRATIONS.get(key)
    if known is not None and known[0]() is index:
        return known[1]
    result = calibrate_refusal(index, embedder)
    _CALIBRATIONS[key] = (weakref.ref(index, lambda _ref, key=key: _CALIBRATIONS.pop(key, None)), result)
    return result


def match_threshold(index: Any, embedder: Any) -> float | None:
    """The similarity a best hit needs for the catalog to "have" what was asked, or None.

    None for a catalog without labels to calibrate on (a photo folder). Introduced in 03_image_retrieval.
    """
    calibration = refusal_calibration(index, embedder)
    return calibration["threshold"] if calibration else None
