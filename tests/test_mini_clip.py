"""The bundled mini-CLIP: its tokenizer, its size, its retrieval quality, and the trainer itself."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from course_utils.catalog import COLOR_HEX, PATTERNS, SHAPES, load_catalog
from course_utils.embeddings import BUNDLED_MODEL_DIR, load_clip
from course_utils.evaluation import load_queries, run_eval
from course_utils.mini_clip import build_pool, caption_for, make_caption, sample_item, train_mini_clip

DATA = Path(__file__).with_name("data")
MAX_MODEL_BYTES = 25 * 1024 * 1024
KEY_TO_FIELD = {"color": "color_name", "shape": "shape", "pattern": "pattern"}

# Ids of the standard CLIP tokenizer (openai/clip-vit-base-patch32), as every CLIP checkpoint uses them.
KNOWN_IDS = {
    "red": [49406, 736, 49407],
    "a photo of a cat": [49406, 320, 1125, 539, 320, 2368, 49407],
    "a photo of a dog": [49406, 320, 1125, 539, 320, 1929, 49407],
    "hello world": [49406, 3306, 1002, 49407],
}

# Words that name an attribute value; a caption must not use them for attributes it does not mention.
ATTRIBUTE_WORDS = {
    "color": set(COLOR_HEX) | {"grey"},
    "shape": {
        "circle", "circles", "round", "circular", "disc", "discs", "square", "squares", "rectangle",
        "rectangles", "rectangular", "oblong", "triangle", "triangles", "triangular", "diamond", "diamonds",
        "hexagon", "hexagons", "hexagonal", "six", "star", "stars", "starry",
    },
    "pattern": {
        "solid", "plain", "unpatterned", "single", "striped", "stripes", "stripy", "stripe", "dotted", "dots",
        "dot", "polka", "spotted", "spots", "checkered", "checkerboard", "checked", "chequered", "checks", "check",
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(BUNDLED_MODEL_DIR))


@pytest.mark.parametrize("text, ids", KNOWN_IDS.items())
def test_tokenizer_ids_match_standard_clip(tokenizer, text, ids):
    assert tokenizer(text)["input_ids"] == ids


def test_tokenizer_vocabulary(tokenizer):
    assert len(tokenizer) == 49408
    assert tokenizer.bos_token_id == 49406 and tokenizer.eos_token_id == 49407
    vocab = json.loads((BUNDLED_MODEL_DIR / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == 49408
    assert vocab["!"] == 0 and vocab["!</w>"] == 256 and vocab["red</w>"] == 736
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407


def test_slow_tokenizer_files_agree_with_tokenizer_json(tokenizer, tmp_path):
    """vocab.json + merges.txt (what transformers 4.x's slow tokenizer reads) give the same ids."""
    from transformers import CLIPTokenizer

    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(BUNDLED_MODEL_DIR / name, tmp_path / name)
    slow = CLIPTokenizer(vocab=str(tmp_path / "vocab.json"), merges=str(tmp_path / "merges.txt"))
    for text in ["Do you sell round, grey things with polka-dots?", "a checkerboard star-shaped item for $23.40"]:
        assert slow(text)["input_ids"] == tokenizer(text)["input_ids"]


def test_bundled_model_is_small_and_loads_the_standard_way():
    size = sum(f.stat().st_size for f in BUNDLED_MODEL_DIR.iterdir() if f.is_file())
    assert size <= MAX_MODEL_BYTES, f"bundled mini-CLIP is {size / 2**20:.1f} MiB"
    embedder = load_clip(str(BUNDLED_MODEL_DIR), "cpu")
    config = embedder.model.config
    assert config.vision_config.image_size == 128 and config.text_config.vocab_size == 49408
    assert embedder.processor.image_processor.crop_size["height"] == 128
    vectors = embedder.embed_texts(["a red circle", "a blue striped square"])
    assert vectors.shape == (2, embedder.dim) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    log = json.loads((BUNDLED_MODEL_DIR / "training_log.json").read_text(encoding="utf-8"))
    assert log["seed"] == 0 and log["losses"][-1]["loss"] < log["losses"][0]["loss"]


# --------------------------------------------------------------------------- query sets and quality


def _matches(product, attributes: dict[str, str]) -> bool:
    return all(getattr(product, KEY_TO_FIELD[key]) == value for key, value in attributes.items())


@pytest.mark.parametrize(
    "queries_file, catalog_file",
    [("queries_default.jsonl", None), ("queries_large.jsonl", "catalog_large.json")],
)
def test_query_sets_are_honest(queries_file, catalog_file):
    """Every query lists exactly the products that have all the attributes it asks for."""
    from course_utils.catalog import default_catalog

    products = load_catalog(DATA / catalog_file) if catalog_file else default_catalog()
    queries = load_queries(DATA / queries_file)
    assert sum(1 for q in queries if q["relevant"]) >= 40
    for q in queries:
        expected = [p.name for p in products if _matches(p, q["attributes"])]
        assert q["relevant"] == expected, q["query"]


def test_large_catalog_shares_attributes():
    products = load_catalog(DATA / "catalog_large.json")
    assert len(products) >= 40
    assert len({p.color_name for p in products}) == len(COLOR_HEX)
    assert {p.shape for p in products} == set(SHAPES) and {p.pattern for p in products} == set(PATTERNS)
    assert max(sum(p.shape == s for p in products) for s in SHAPES) >= 5


@pytest.fixture(scope="module")
def default_eval():
    return run_eval(DATA / "queries_default.jsonl", model=str(BUNDLED_MODEL_DIR), device="cpu")


def test_quality_default_catalog(default_eval):
    assert default_eval["n_queries"] >= 40
    assert default_eval["r_precision"] >= 0.90
    assert default_eval["hit_at_1"] >= 0.90


def test_quality_large_catalog():
    result = run_eval(
        DATA / "queries_large.jsonl", DATA / "catalog_large.json", model=str(BUNDLED_MODEL_DIR), device="cpu"
    )
    assert result["n_queries"] >= 40
    assert result["r_precision"] >= 0.75


def test_absent_products_score_lower(default_eval):
    """What the catalog lacks ("a black hexagon") still gets a best hit, with a lower similarity."""
    present = [row["best_similarity"] for row in default_eval["per_query"] if row["ranks"]]
    absent = [row["best_similarity"] for row in default_eval["per_query"] if not row["ranks"]]
    assert absent and max(absent) < np.median(present)


# --------------------------------------------------------------------------- data and training


def test_pool_and_captions_are_deterministic():
    a, b, c = build_pool(6, seed=3), build_pool(6, seed=3), build_pool(6, seed=4)
    assert np.array_equal(a.pixels, b.pixels) and a.pixels.shape == (6, 128, 128, 3)
    assert not np.array_equal(a.pixels, c.pixels)

    def captions(seed):
        rng = np.random.default_rng(seed)
        return [caption_for(rng, sample_item(rng).attributes()) for _ in range(50)]

    assert captions(5) == captions(5)
    assert captions(5) != captions(6)


def test_captions_mention_exactly_their_attributes():
    rng = np.random.default_rng(0)
    for _ in range(500):
        attrs = {key: value for key, value in sample_item(rng).attributes().items() if rng.random() < 0.6}
        if not attrs:
            continue
        text = make_caption(rng, attrs)
        words = set(re.findall(r"[a-z]+", text.lower()))
        for key, words_for_key in ATTRIBUTE_WORDS.items():
            if key not in attrs:
                assert not words & words_for_key, (text, attrs)
        if "color" in attrs:
            assert words & ({attrs["color"]} | ({"grey"} if attrs["color"] == "gray" else set())), text


def test_training_smoke(tmp_path):
    """A few dozen small steps: the loss falls and the folder loads as a CLIP model."""
    seen = []
    result = train_mini_clip(
        tmp_path / "clip", steps=40, seed=1, progress=False, log_every=10, batch_size=16,
        captions_per_image=1, pool_size=64, lr=2e-3, on_log=lambda step, loss: seen.append((step, loss)),
    )  # fmt: skip
    losses = [entry["loss"] for entry in result["losses"]]
    assert [step for step, _ in seen] == [10, 20, 30, 40]
    assert losses[-1] < losses[0]
    assert result["elapsed_s"] > 0
    log = json.loads((tmp_path / "clip" / "training_log.json").read_text(encoding="utf-8"))
    assert log["losses"] == result["losses"] and log["steps"] == 40
    embedder = load_clip(str(tmp_path / "clip"), "cpu")
    assert embedder.embed_texts(["a red circle"]).shape == (1, embedder.dim)
