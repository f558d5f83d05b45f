"""Shared fixtures: a tiny randomly initialised CLIP saved to disk and loaded the real way."""

from __future__ import annotations

import json

import pytest
from hypothesis import settings

from course_utils.catalog import default_catalog, render_catalog

# No deadline: a property test must never fail because a shared machine was slow that second.
settings.register_profile("course", deadline=None)
settings.load_profile("course")


def _byte_level_vocab() -> dict[str, int]:
    """A character-level CLIP BPE vocabulary: every byte, alone and word-final, plus the specials."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = [chr(b) for b in printable] + [chr(256 + i) for i in range(256 - len(printable))]
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    """A tiny random CLIPModel + processor saved with save_pretrained, as a hub model would be."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    out = tmp_path_factory.mktemp("tiny-clip")
    vocab = _byte_level_vocab()
    (out / "vocab.json").write_text(json.dumps(vocab))
    (out / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(out / "vocab.json"), str(out / "merges.txt"))
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": vocab["<|endoftext|>"],
            "pad_token_id": vocab["<|endoftext|>"],
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    import torch

    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(out)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_embedder(tiny_clip_dir):
    from course_utils.embeddings import load_clip

    return load_clip(str(tiny_clip_dir), device="cpu")


@pytest.fixture(scope="session")
def catalog_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("catalog")
    render_catalog(default_catalog(), out)
    return out


@pytest.fixture(scope="session")
def tiny_index(tiny_embedder, catalog_dir):
    from course_utils.indexing import build_index

    products = default_catalog()
    return build_index(products, [catalog_dir / f"{p.slug}.png" for p in products], tiny_embedder)


@pytest.fixture
def cli_env(monkeypatch, tmp_path, tiny_clip_dir):
    """The command line on the tiny model, offline, with its own cache folder."""
    monkeypatch.setenv("COURSE_CLIP_MODEL", str(tiny_clip_dir))
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    return tmp_path
