"""Build the standard CLIP BPE tokenizer files (``vocab.json`` + ``merges.txt``) without the hub.

OpenAI's CLIP tokenizer is defined by one file, ``bpe_simple_vocab_16e6.txt.gz``, which the
``open_clip_torch`` wheel carries. This script downloads that wheel with pip (no install), reads the
file out of the wheel's zip and writes the two files Hugging Face's ``CLIPTokenizer`` loads, in the
same order and with the same token ids as ``openai/clip-vit-base-patch32``'s tokenizer.

Usage::

    python scripts/build_clip_tokenizer.py [--out course_utils/models/mini-clip] [--wheel FILE.whl]

Used to make the bundled mini-CLIP (07_train_your_own_clip).
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

BPE_NAME = "bpe_simple_vocab_16e6.txt.gz"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "course_utils" / "models" / "mini-clip"
VOCAB_SIZE = 49408
# the BPE file holds a header line and more merges than CLIP uses: CLIP keeps this many
N_MERGES = 49152 - 256 - 2


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode character table (256 entries)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def build_vocab(bpe_text: str) -> tuple[dict[str, int], list[str]]:
    """The CLIP vocabulary (token -> id) and merge lines, built exactly as OpenAI's SimpleTokenizer does."""
    lines = bpe_text.split("\n")
    merges = lines[1 : N_MERGES + 1]
    if len(merges) != N_MERGES or any(len(m.split()) != 2 for m in merges):
        raise SystemExit(f"{BPE_NAME} does not look like the CLIP BPE file (expected {N_MERGES} merge pairs).")
    tokens = list(bytes_to_unicode().values())
    tokens = tokens + [t + "</w>" for t in tokens]
    tokens += ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    if len(vocab) != VOCAB_SIZE:
        raise SystemExit(f"Built {len(vocab)} distinct tokens, expected {VOCAB_SIZE}.")
    return vocab, merges


def read_bpe_from_wheel(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.endswith("/" + BPE_NAME)]
        if not names:
            raise SystemExit(f"{wheel.name} has no {BPE_NAME}.")
        return gzip.decompress(zf.read(names[0])).decode("utf-8")


def download_wheel(dest: Path) -> Path:
    # pip download only fetches the file; open_clip_torch is never installed
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "open_clip_torch",
            "-d",
            str(dest),
        ],
        check=True,
    )
    wheels = sorted(dest.glob("open_clip_torch-*.whl"))
    if not wheels:
        raise SystemExit("pip did not download an open_clip_torch wheel.")
    return wheels[-1]


def write_tokenizer(vocab: dict[str, int], merges: list[str], out: Path) -> None:
    """Write ``vocab.json`` and ``merges.txt`` in the layout of the hub's CLIP tokenizer."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    # HF's CLIPTokenizer skips the first line of merges.txt, as OpenAI's skips the BPE file's header
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--wheel", type=Path, help="an already downloaded open_clip_torch wheel")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(Path(tmp))
        vocab, merges = build_vocab(read_bpe_from_wheel(wheel))
    write_tokenizer(vocab, merges, args.out)
    print(f"Wrote {len(vocab)} tokens and {len(merges)} merges to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
