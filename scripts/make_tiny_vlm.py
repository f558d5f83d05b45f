"""Build a tiny, randomly initialised SmolVLM-family model offline, for tests of the local provider.

SmolVLM-256M/500M-Instruct are Idefics3 models (a SigLIP vision tower, a pixel-shuffle connector,
a Llama-style SmolLM2 decoder) served through ``Idefics3Processor``. This script builds the same
classes at toy sizes, with a byte-level BPE tokenizer trained here on a few sentences, the special
tokens the processor needs and SmolVLM's chat template, and saves them with ``save_pretrained``:
the folder loads through ``AutoProcessor`` and ``AutoModelForImageTextToText`` exactly as the real
model does. The image processor keeps the real model's settings (tiles of 512 pixels, longest edge
2048), so token counts measured with it are those of the real model up to ``image_seq_len``.

Nothing is downloaded. The model answers gibberish: it is for plumbing, not for answers.

Usage::

    python scripts/make_tiny_vlm.py DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# SmolVLM-Instruct's chat template: "<|im_start|>System: ...<end_of_utterance>\nUser:<image>...".
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
IMAGE_TOKENS = ["<fake_token_around_image>", "<image>", "<global-img>"]
TILE_TOKENS = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", *IMAGE_TOKENS, *TILE_TOKENS]
TRAINING_TEXT = [
    "You are a shopping assistant. Answer only from the catalog entries and the images.",
    "What red products do you have? The red round mug costs $12.50.",
    "Catalog entries, most relevant first: name, colour, shape, pattern, price, category.",
    "I cannot find that product in the catalog. Blue, green, yellow, striped, dotted, plain.",
]
TILE = 512  # SmolVLM's vision tower sees 512 x 512 tiles
PATCH = 32  # the real model uses 16; 32 keeps the tiny tower fast (16 image tokens per tile)
SCALE_FACTOR = 4  # pixel shuffle: (512 / 32) ** 2 / 4 ** 2 = 16 tokens per tile


def build_tokenizer():
    """A byte-level BPE tokenizer (any text encodes) with SmolVLM's special tokens and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(TRAINING_TEXT, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[3:],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build(out: Path) -> Path:
    """Write the tiny model, processor and tokenizer to ``out``; returns ``out``."""
    import torch
    from transformers import GenerationConfig, Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    tokenizer = build_tokenizer()
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=True, size={"longest_edge": 4 * TILE}, max_image_size={"longest_edge": TILE}
    )
    image_seq_len = (TILE // PATCH) ** 2 // SCALE_FACTOR**2
    processor = Idefics3Processor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_len=image_seq_len, chat_template=CHAT_TEMPLATE
    )
    eos_id = tokenizer.convert_tokens_to_ids("<end_of_utterance>")
    pad_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Idefics3Config(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": TILE,
            "patch_size": PATCH,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "max_position_embeddings": 16384,
            "pad_token_id": pad_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": eos_id,
        },
        scale_factor=SCALE_FACTOR,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=pad_id,
    )
    torch.manual_seed(0)
    model = Idefics3ForConditionalGeneration(config).eval()
    # no end token: random weights could emit it at any step, and tests need generation to run
    # to the token limit every time
    model.generation_config = GenerationConfig(pad_token_id=pad_id, do_sample=False)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write the model to")
    args = parser.parse_args(argv)
    out = build(args.out)
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"Wrote a tiny Idefics3 (SmolVLM family) model to {out} ({size / 1e6:.1f} MB).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
