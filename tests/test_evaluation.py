"""Retrieval metrics, labelled-query files and evaluate_retrieval, without any model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from course_utils.catalog import default_catalog
from course_utils.errors import CourseError
from course_utils.evaluation import (
    evaluate_retrieval,
    format_report,
    hit_at_k,
    load_queries,
    r_precision,
    rank_products,
    reciprocal_rank,
)


def test_hit_at_k():
    assert hit_at_k([1], 1) == 1.0
    assert hit_at_k([2, 5], 1) == 0.0
    assert hit_at_k([2, 5], 2) == 1.0
    assert hit_at_k([], 3) == 0.0
    with pytest.raises(ValueError):
        hit_at_k([1], 0)


def test_reciprocal_rank():
    assert reciprocal_rank([1, 4]) == 1.0
    assert reciprocal_rank([4, 2]) == 0.5
    assert reciprocal_rank([]) == 0.0


def test_r_precision():
    assert r_precision([1, 2, 3]) == 1.0
    assert r_precision([1, 2, 4]) == pytest.approx(2 / 3)
    assert r_precision([2]) == 0.0
    assert r_precision([]) == 0.0


def test_ties_rank_relevant_products_last():
    sims = np.array([0.5, 0.5, 0.5, 0.1])
    relevant = np.array([True, False, False, False])
    assert list(rank_products(sims, relevant)) == [1, 2, 0, 3]


class FakeEmbedder:
    """Texts map to fixed unit vectors: enough to check the bookkeeping of evaluate_retrieval."""

    model_id = "fake"

    def __init__(self, vectors: dict[str, list[float]]):
        self.vectors = vectors

    def embed_texts(self, texts):
        rows = np.array([self.vectors[t] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_evaluate_retrieval_scores_and_records():
    products = default_catalog()[:3]  # Widget A, Widget B, Gadget X
    images = np.eye(3, dtype=np.float32)
    embedder = FakeEmbedder({"a": [1, 0.2, 0], "b or x": [0.1, 1, 0.9], "x": [0.9, 0, 0.5], "none": [0, 0, 1]})
    queries = [
        {"query": "a", "relevant": ["Widget A"]},
        {"query": "b or x", "relevant": ["Widget B", "Gadget X"]},
        {"query": "x", "relevant": ["Gadget X"]},
        {"query": "none", "relevant": []},
    ]
    result = evaluate_retrieval(queries, products, images, embedder)
    assert result["model"] == "fake"
    assert result["n_queries"] == 3 and result["n_absent"] == 1
    rows = result["per_query"]
    assert rows[0]["ranks"] == [1] and rows[0]["top"][0] == "Widget A"
    assert rows[1]["ranks"] == [1, 2] and rows[1]["r_precision"] == 1.0
    assert rows[2]["ranks"] == [2] and rows[2]["reciprocal_rank"] == 0.5 and rows[2]["hit_at_1"] == 0.0
    assert rows[3]["ranks"] == [] and rows[3]["r_precision"] is None
    assert rows[3]["best_similarity"] == pytest.approx(1.0)
    assert result["hit_at_1"] == pytest.approx(2 / 3)
    assert result["mrr"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert result["r_precision"] == pytest.approx(2 / 3)


def test_evaluate_retrieval_rejects_unknown_products_and_bad_shapes():
    products = default_catalog()[:2]
    embedder = FakeEmbedder({"q": [1, 0]})
    with pytest.raises(CourseError, match="Widget Q"):
        evaluate_retrieval([{"query": "q", "relevant": ["Widget Q"]}], products, np.eye(2), embedder)
    with pytest.raises(CourseError, match="one image per product"):
        evaluate_retrieval([{"query": "q", "relevant": ["Widget A"]}], products, np.eye(3), embedder)


def test_load_queries_reads_jsonl_and_keeps_extra_keys(tmp_path):
    path = tmp_path / "q.jsonl"
    lines = [
        {"query": " red circle ", "relevant": ["Widget A"], "attributes": {"color": "red"}},
        {"query": "black hexagon", "relevant": []},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    queries = load_queries(path)
    assert [q["query"] for q in queries] == ["red circle", "black hexagon"]
    assert queries[0]["attributes"] == {"color": "red"}


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "line 2: not valid JSON"),
        ('["red"]', "line 2: expected a JSON object"),
        ('{"relevant": []}', "line 2: 'query'"),
        ('{"query": "red", "relevant": "Widget A"}', "line 2: 'relevant'"),
        ('{"query": "red", "relevant": ["Widget A", "Widget A"]}', "line 2: 'relevant' lists a product twice"),
    ],
)
def test_load_queries_names_the_bad_line(tmp_path, line, message):
    path = tmp_path / "q.jsonl"
    path.write_text('{"query": "ok", "relevant": ["Widget A"]}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(CourseError, match=message):
        load_queries(path)


def test_load_queries_missing_or_empty_file(tmp_path):
    with pytest.raises(CourseError, match="not found"):
        load_queries(tmp_path / "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(CourseError, match="no queries"):
        load_queries(empty)


def test_format_report_lists_means_and_queries():
    products = default_catalog()[:2]
    embedder = FakeEmbedder({"a": [1, 0], "gone": [0.5, 0.5]})
    queries = [{"query": "a", "relevant": ["Widget A"]}, {"query": "gone", "relevant": []}]
    text = format_report(evaluate_retrieval(queries, products, np.eye(2), embedder))
    assert "R-precision 1.000" in text and "(+1 for absent products)" in text
    assert "a -> Widget A, Widget B" in text
    assert "absent" in text and "gone ->" in text
