"""Refusal on a photo folder: no labels to calibrate on, so a hit must stand out to be a match."""

from __future__ import annotations

import numpy as np

from course_utils.catalog import Product
from course_utils.index import ImageIndex
from course_utils.retrieval import MATCH_Z, retrieve


class FixedQuery:
    """An embedder whose every text embeds to one given vector (no tokenizer, so no length note)."""

    model_id = "fixed"
    processor = None

    def __init__(self, vector):
        self.vector = np.asarray(vector, dtype=np.float32)

    def embed_texts(self, texts):
        return np.stack([self.vector for _ in texts])


def photo_index(similarities):
    """An index of photos (no prices, no attributes) whose rows score ``similarities`` against e0."""
    rows = []
    for s in similarities:
        rows.append([s, np.sqrt(1 - s * s), 0.0])
    products = [Product.from_file_name(f"IMG_{i}") for i in range(len(rows))]
    return ImageIndex(np.array(rows), products, [f"IMG_{i}.jpg" for i in range(len(rows))], "fixed")


def test_a_photo_folder_refuses_a_query_where_nothing_stands_out():
    index = photo_index([0.29, 0.31, 0.29, 0.31, 0.29, 0.31, 0.29, 0.31])  # every z-score is ±1
    found = retrieve("a unicorn", index, FixedQuery([1, 0, 0]), k=3)
    assert found.match is False and all(hit.weak for hit in found)


def test_a_photo_folder_matches_a_query_where_one_photo_stands_out():
    index = photo_index([0.30, 0.31, 0.29, 0.30, 0.80, 0.28, 0.31, 0.30])
    found = retrieve("the beach", index, FixedQuery([1, 0, 0]), k=3)
    scores = np.array([0.30, 0.31, 0.29, 0.30, 0.80, 0.28, 0.31, 0.30])
    assert (scores.max() - scores.mean()) / scores.std() >= MATCH_Z  # the premise of the test
    assert found.match is True and found[0].path == "IMG_4.jpg" and not found[0].weak and found[1].weak
