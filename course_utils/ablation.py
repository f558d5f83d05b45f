"""What the pictures add, measured: every question under every evidence condition, scored.

The questions come from the catalog's own labels, so each one carries the set of products that
answers it. An answer is scored by the products it names (found by the grounding parser): an
exact match, precision, recall, and whether it names a product that does not exist. The result
is a table of condition × question type (:func:`format_table`, :func:`course_utils.viz.ablation_bars`).
Backs ``python -m course_utils ablation``. Introduced in 10_what_the_pictures_add.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .catalog import COLOR_HEX, SHAPES, Product
from .errors import CourseError
from .evaluation import load_queries
from .grounding import check_grounding
from .llm import OFFLINE_PROVIDER, can_pin_provider, default_reader
from .prompts import CONDITIONS
from .rag import ImageRAG, check_condition

__all__ = [
    "PRICE_TYPES",
    "QUESTION_TYPES",
    "VISUAL_TYPES",
    "ablation_questions",
    "expected_shape",
    "first_per_type",
    "format_table",
    "load_ablation_questions",
    "run_ablation",
    "score_answer",
]

QUESTION_TYPES = ("color", "shape", "pattern", "combination", "price", "category", "absent")
#: The question types a picture answers; a price only the rows know.
VISUAL_TYPES = ("color", "shape", "pattern", "combination")
PRICE_TYPES = ("price",)
METRICS = ("accuracy", "precision", "recall", "invented_rate")

_PATTERN_QUESTIONS = {
    "solid": "Which products are plain?",
    "striped": "Which products have stripes?",
    "dotted": "Which products have dots?",
    "checkered": "Which products are checkered?",
}
_ABSENT_PAIRS = 4  # colour + shape pairs asked about that no product has


def _shape_question(shape: str) -> str:
    return f"Do you have anything shaped like a {shape}?"


def _pair_question(color: str, shape: str) -> str:
    return f"Do you have a {color} {shape}?"


def _price_limits(products: Sequence[Product], most: int = 3) -> list[tuple[int, list[Product]]]:
    """Whole-dollar limits that let through exactly the 1, 2, ... ``most`` cheapest products."""
    priced = sorted((p for p in products if p.price is not None), key=lambda p: p.price)
    limits = []
    for n in range(1, min(most, len(priced)) + 1):
        limit = math.floor(priced[n - 1].price) + 1
        if n == len(priced) or limit < priced[n].price:
            limits.append((limit, priced[:n]))
    return limits


def ablation_questions(products: Sequence[Product]) -> list[dict[str, Any]]:
    """Questions with known answers, made from the catalog's labels, one per attribute value.

    Each is ``{"query", "relevant", "type"}``: ``relevant`` names every product that answers it
    (empty for ``absent``). Types: colour, shape, pattern, combination (colour + shape), price
    (cheapest, most expensive, under $X), category, absent (a colour, shape, pattern or colour +
    shape the catalog lacks). Introduced in 10_what_the_pictures_add.
    """
    products = list(products)
    questions: list[dict[str, Any]] = []

    def add(kind: str, text: str, relevant: Sequence[Product]) -> None:
        questions.append({"query": text, "relevant": [p.name for p in relevant], "type": kind})

    def having(**attrs: str) -> list[Product]:
        return [p for p in products if all(getattr(p, k) == v for k, v in attrs.items())]

    colors = [c for c in COLOR_HEX if having(color_name=c)]  # the colour words the course knows
    shapes = [s for s in SHAPES if having(shape=s)]
    for color in colors:
        add("color", f"What {color} products do you have?", having(color_name=color))
    for shape in shapes:
        add("shape", _shape_question(shape), having(shape=shape))
    for pattern, text in _PATTERN_QUESTIONS.items():
        if having(pattern=pattern):
            add("pattern", text, having(pattern=pattern))
    for color, shape in sorted({(p.color_name, p.shape) for p in products if p.color_name in colors}):
        add("combination", _pair_question(color, shape), having(color_name=color, shape=shape))
    priced = [p for p in products if p.price is not None]
    if priced:
        add("price", "What is the cheapest product?", [min(priced, key=lambda p: p.price)])
        add("price", "What is the most expensive product?", [max(priced, key=lambda p: p.price)])
        for limit, under in _price_limits(priced):
            add("price", f"Which products cost under ${limit}?", under)
    for category in sorted({p.category for p in products}):
        add("category", f"Show me your {category}.", having(category=category))
    for color in COLOR_HEX:
        if not having(color_name=color):
            add("absent", f"What {color} products do you have?", [])
    for shape in SHAPES:
        if not having(shape=shape):
            add("absent", _shape_question(shape), [])
    for pattern, text in _PATTERN_QUESTIONS.items():
        if not having(pattern=pattern):
            add("absent", text, [])
    pairs = [(c, s) for c in colors for s in shapes if not having(color_name=c, shape=s)]
    for color, shape in pairs[:: max(1, len(pairs) // _ABSENT_PAIRS)][:_ABSENT_PAIRS]:
        add("absent", _pair_question(color, shape), [])
    return questions


def first_per_type(questions: Sequence[Mapping[str, Any]], n: int) -> list[dict[str, Any]]:
    """At most ``n`` questions of each type, in their order: a shorter run for a rate-limited API.

    Introduced in 10_what_the_pictures_add.
    """
    if not isinstance(n, int) or n < 1:
        raise CourseError(f"Keep at least 1 question of each type, not {n!r}.")
    kept, counts = [], {}
    for q in questions:
        counts[q.get("type")] = counts.get(q.get("type"), 0) + 1
        if counts[q.get("type")] <= n:
            kept.append(dict(q))
    return kept


# --------------------------------------------------------------------------- scoring


def score_answer(answer: str, relevant: Sequence[str], products: Sequence[Product]) -> dict[str, Any]:
    """Score one answer by the products it names, against the set that answers the question.

    ``exact``: it names exactly the right products and nothing invented. ``precision``: the share
    of the products it names that are right (1.0 when it names none: no wrong claim).
    ``recall``: the share of the right products it names (1.0 when there are none to name).
    ``invented``: it names a product that is not in the catalog. Introduced in 10_what_the_pictures_add.
    """
    report = check_grounding(answer, (), products)
    named, invented, right = set(report.mentioned), set(report.unknown_products), set(relevant)
    claimed = len(named) + len(invented)
    return {
        "named": sorted(named),
        "invented": sorted(invented),
        "exact": named == right and not invented,
        "precision": len(named & right) / claimed if claimed else 1.0,
        "recall": len(named & right) / len(right) if right else 1.0,
    }


def _summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    scored = [r for r in rows if "error" not in r]
    if not scored:
        return {"accuracy": None, "precision": None, "recall": None, "invented_rate": None, "n": 0}

    def mean(values: Sequence[float]) -> float:
        return round(sum(values) / len(values), 4)

    return {
        "accuracy": mean([float(r["exact"]) for r in scored]),
        "precision": mean([r["precision"] for r in scored]),
        "recall": mean([r["recall"] for r in scored]),
        "invented_rate": mean([float(bool(r["invented"])) for r in scored]),
        "n": len(scored),
    }


def _sent_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    sent = [r["sent"] for r in rows if r.get("sent")]
    if not sent:
        return {}
    tokens = [s["image_tokens"] for s in sent if s["image_tokens"] is not None]
    sources = sorted({s["image_tokens_source"] for s in sent})
    return {
        "images": round(sum(s["images"] for s in sent) / len(sent), 2),
        "prompt_chars": round(sum(s["prompt_chars"] for s in sent) / len(sent), 1),
        "image_tokens": round(sum(tokens) / len(tokens), 1) if len(tokens) == len(sent) else None,
        "image_tokens_source": ", ".join(sources),
    }


# --------------------------------------------------------------------------- the run


class _RememberedTexts:
    """An embedder that embeds each question once: every condition asks the same question."""

    def __init__(self, embedder: Any, texts: Sequence[str]) -> None:
        self._embedder = embedder
        unique = list(dict.fromkeys(texts))
        self._vectors = dict(zip(unique, embedder.embed_texts(unique), strict=True)) if unique else {}

    def __getattr__(self, name: str) -> Any:  # model_id, processor, max_text_tokens, ...
        return getattr(self._embedder, name)

    def embed_texts(self, texts: str | Sequence[str]) -> np.ndarray:
        texts = [texts] if isinstance(texts, str) else list(texts)
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            self._vectors.update(zip(missing, self._embedder.embed_texts(missing), strict=True))
        return np.stack([self._vectors[t] for t in texts]) if texts else self._embedder.embed_texts([])


def run_ablation(
    rag: ImageRAG,
    questions: Sequence[Mapping[str, Any]] | None = None,
    conditions: Sequence[str] = CONDITIONS,
    k: int = 3,
    metadata: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Ask every question under every condition with ``rag``'s LLM, and score every answer.

    ``questions`` default to :func:`ablation_questions` of ``rag.index.products``. The first answer
    decides the provider and model, and every later call is pinned to them where the LLM can be
    pinned, so each condition is answered by one model. A call that fails is recorded with its
    error and left out of the scores.

    Returns a dict with ``conditions`` (one object per condition: ``accuracy``, ``precision``,
    ``recall``, ``invented_rate``, ``n``, ``by_type`` with the same per question type, and ``sent``:
    the mean images, prompt characters and image tokens per question), ``questions`` (every answer
    and its score), the catalog size, the view, the models, and ``seeing`` (the offline answerer's
    per-attribute accuracy on this catalog's pictures) when the offline answerer answered.
    Introduced in 10_what_the_pictures_add.
    """
    conditions = [check_condition(c) for c in conditions]
    if not conditions:
        raise CourseError(f"Give at least one condition: {', '.join(CONDITIONS)}.")
    products = list(rag.index.products)
    questions = list(questions) if questions is not None else ablation_questions(products)
    known = {p.name for p in products}
    for q in questions:
        unknown = [name for name in q["relevant"] if name not in known]
        if unknown:
            raise CourseError(f"Question {q['query']!r} lists {', '.join(map(repr, unknown))}, not in the catalog.")
    view = metadata or rag.metadata
    texts = _RememberedTexts(rag.embedder, [" ".join(q["query"].split()) for q in questions])
    rag = ImageRAG(rag.index, texts, rag.llm, plan=rag.plan, metadata=rag.metadata, seed=rag.seed)
    order = ["both", *(c for c in conditions if c != "both")] if "both" in conditions else conditions
    pins: dict[str, str] = {}
    start = time.perf_counter()
    records = []
    for number, q in enumerate(questions, start=1):
        if progress and (number == 1 or number % 10 == 0 or number == len(questions)):
            progress(f"question {number}/{len(questions)}")
        answers = {}
        for condition in order:
            try:
                result = rag.ask(q["query"], condition, k=k, metadata=view, **pins)
            except CourseError as exc:
                answers[condition] = {"error": str(exc)}
                continue
            if not pins and can_pin_provider(rag.llm):
                pins = {"provider": result.provider, "model": result.model}
            answers[condition] = {
                "answer": result.answer,
                "provider": result.provider,
                "llm_model": result.model,
                "sent": result.sent.to_dict() if result.sent else None,
                **score_answer(result.answer, q["relevant"], products),
            }
        records.append(
            {
                "query": q["query"],
                "type": q.get("type", "other"),
                "relevant": list(q["relevant"]),
                "answers": {c: answers[c] for c in conditions},
            }
        )
    types = [t for t in QUESTION_TYPES if any(r["type"] == t for r in records)]
    types += sorted({r["type"] for r in records} - set(types))
    summary = []
    for condition in conditions:
        rows = [r["answers"][condition] for r in records]
        summary.append(
            {
                "condition": condition,
                **_summary(rows),
                "errors": sum(1 for row in rows if "error" in row),
                "by_type": {t: _summary([r["answers"][condition] for r in records if r["type"] == t]) for t in types},
                "sent": _sent_summary(rows),
            }
        )
    answered = [a for r in records for a in r["answers"].values() if "provider" in a]
    providers = sorted({(a["provider"], a["llm_model"]) for a in answered})
    report: dict[str, Any] = {
        "catalog_products": len(products),
        "metadata": view,
        "k": k,
        "seed": rag.seed,
        "clip_model": rag.index.model_id,
        "llm": [{"provider": p, "model": m} for p, m in providers],
        "n_questions": len(records),
        "seconds": round(time.perf_counter() - start, 1),
        "conditions": summary,
        "questions": records,
    }
    if any(p == OFFLINE_PROVIDER for p, _ in providers):
        reader = getattr(rag.llm, "reader", None) or default_reader()
        report["seeing"] = reader.accuracy(products, list(rag.index.paths))
    return report


# --------------------------------------------------------------------------- reading the result


def _pooled(report: Mapping[str, Any], condition: str, types: Sequence[str], metric: str = "accuracy") -> float | None:
    """One metric over several question types, weighted by how many questions each has."""
    entry = next((c for c in report["conditions"] if c["condition"] == condition), None)
    if entry is None:
        return None
    cells = [entry["by_type"][t] for t in types if t in entry["by_type"] and entry["by_type"][t]["n"]]
    total = sum(c["n"] for c in cells)
    return sum(c[metric] * c["n"] for c in cells) / total if total else None


def expected_shape(report: Mapping[str, Any], metric: str = "accuracy") -> list[dict[str, Any]]:
    """The claims the course makes about a ``shop``-view ablation, each checked on ``report``.

    Images and both beat rows alone on the visual question types (colour, shape, pattern,
    combination, pooled); rows and both beat images alone on price questions. Each item has
    ``claim``, ``holds`` (None when a condition or question type is missing) and the two figures.
    Introduced in 10_what_the_pictures_add.
    """
    claims = [
        ("images", "metadata", VISUAL_TYPES, "visual"),
        ("both", "metadata", VISUAL_TYPES, "visual"),
        ("metadata", "images", PRICE_TYPES, "price"),
        ("both", "images", PRICE_TYPES, "price"),
    ]
    checks = []
    for winner, loser, types, label in claims:
        left, right = _pooled(report, winner, types, metric), _pooled(report, loser, types, metric)
        holds = None if left is None or right is None else left > right
        checks.append(
            {
                "claim": f"{winner} beats {loser} on {label} questions ({metric})",
                "holds": holds,
                winner: None if left is None else round(left, 3),
                loser: None if right is None else round(right, 3),
            }
        )
    return checks


def _cell(value: float | None) -> str:
    return "   -  " if value is None else f"{value:6.2f}"


def format_table(report: Mapping[str, Any], metric: str = "accuracy") -> str:
    """The ablation as text: a row per condition, a column per question type, then what was sent.

    Introduced in 10_what_the_pictures_add.
    """
    types = list(report["conditions"][0]["by_type"]) if report["conditions"] else []
    llm = ", ".join(f"{m['provider']} ({m['model']})" for m in report["llm"]) or "no answer"
    lines = [
        f"{report['n_questions']} questions on {report['catalog_products']} products, metadata view "
        f"'{report['metadata']}', k={report['k']}; CLIP {report['clip_model']}; answered by {llm}",
        f"{metric} by condition and question type (n per type: "
        + ", ".join(f"{t} {report['conditions'][0]['by_type'][t]['n']}" for t in types)
        + ")",
        "",
        f"{'condition':<11}" + "".join(f"{t[:11]:>12}" for t in types) + f"{'all':>8}{'prec':>7}{'recall':>7}"
        f"{'invent':>7}{'images':>8}{'chars':>7}  image tokens",
    ]
    for entry in report["conditions"]:
        sent = entry.get("sent") or {}
        tokens = sent.get("image_tokens")
        token_text = (
            f"{tokens:g} ({sent.get('image_tokens_source')})"
            if tokens is not None
            else sent.get("image_tokens_source", "")
        )
        errors = f"  ({entry['errors']} failed)" if entry.get("errors") else ""
        lines.append(
            f"{entry['condition']:<11}"
            + "".join(f"{_cell(entry['by_type'][t][metric]):>12}" for t in types)
            + f"{_cell(entry[metric]):>8}{_cell(entry['precision']):>7}{_cell(entry['recall']):>7}"
            f"{_cell(entry['invented_rate']):>7}{sent.get('images', 0):>8g}{sent.get('prompt_chars', 0):>7.0f}  "
            f"{token_text or 'not reported'}{errors}"
        )
    seeing = report.get("seeing")
    if seeing:
        lines += [
            "",
            f"The offline answerer read the {seeing['n']} pictures with {seeing['model']}: colour "
            f"{seeing['color']:.2f}, shape {seeing['shape']:.2f}, pattern {seeing['pattern']:.2f} accuracy.",
        ]
    if report["metadata"] == "shop":
        lines.append("")
        for check in expected_shape(report, metric):
            mark = {True: "holds", False: "does NOT hold", None: "not measured"}[check["holds"]]
            figures = ", ".join(f"{k} {v}" for k, v in check.items() if k not in ("claim", "holds"))
            lines.append(f"  {check['claim']}: {mark} ({figures})")
    return "\n".join(lines)


def load_ablation_questions(path: str | Path) -> list[dict[str, Any]]:
    """Questions from a JSONL file, one ``{"query", "relevant", "type"}`` a line (type optional).

    Introduced in 10_what_the_pictures_add.
    """
    return [{**q, "type": q.get("type") or "other"} for q in load_queries(path)]
