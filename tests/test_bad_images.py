"""Reliability: a corpus of bad and unusual image files, generated here, indexed without stopping.

Every case is built inside tmp_path (nothing is downloaded). Each bad file must be skipped with a
reason that says what is wrong; each unusual-but-valid file must be indexed, the right way up.
"""

import errno
import io
import json
import os
import struct
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from deadline import run_with_a_deadline
from PIL import Image, ImageDraw, features

from course_utils.catalog import Product
from course_utils.cli import main
from course_utils.images import UnusableImage, open_image
from course_utils.indexing import embed_files, index_folder
from course_utils.indexing import workers as decoding

# the 12000x10000 header trips Pillow's own warning before our limit refuses it
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")


def picture(size=(60, 40), seed=0):
    """An asymmetric picture: a rotation or a flip changes it."""
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.rectangle([0, 0, w // 3, h - 1], fill=(220, 30, 30))
    draw.rectangle([w // 2, 0, w - 1, h // 4], fill=(30, 30, 220))
    draw.ellipse([w // 2, h // 2, w - 4, h - 4], fill=(40 + seed * 10 % 200, 180, 40))
    return image


def save(image, path, **kwargs):
    image.save(path, **kwargs)
    return path


def png_bytes(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(image, **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, **kwargs)
    return buffer.getvalue()


def png_header_only(width, height):
    """A valid PNG header claiming width x height pixels, with almost no data behind it."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    )


def gif_header_only(width, height):
    buffer = io.BytesIO()
    Image.new("P", (1, 1)).save(buffer, format="GIF")
    data = bytearray(buffer.getvalue())
    data[6:10] = struct.pack("<HH", width, height)  # the logical screen size
    return bytes(data)


def animated(path, frames, **kwargs):
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0, **kwargs)
    return path


def exif_jpeg(path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return save(picture(), path, format="JPEG", quality=95, exif=exif)


def cmyk_jpeg(path):
    return save(picture().convert("CMYK"), path, format="JPEG")


def sixteen_bit_png(path):
    ramp = (np.arange(40 * 60, dtype=np.uint16).reshape(40, 60) * 27).astype(np.uint16)
    image = Image.fromarray(ramp)
    assert image.mode == "I;16"
    return save(image, path, format="PNG")


def palette_with_transparency(path):
    image = picture().convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    return save(image, path, format="PNG", transparency=0)


def fifo(path):
    os.mkfifo(path)
    return path


def link(target):
    def make(path):
        os.symlink(target if target != "self" else path.name, path)
        return path

    return make


def write(data):
    def make(path):
        path.write_bytes(data() if callable(data) else data)
        return path

    return make


def image_as(**kwargs):
    return lambda path: save(picture(), path, **kwargs)


# name -> (builder, expected): expected is None for a file that must index, else words of the reason
CASES = {
    # broken or not images at all
    "zero_bytes.png": (write(b""), "empty file"),
    "zero_bytes.jpg": (write(b""), "empty file"),
    "truncated.png": (write(lambda: png_bytes(picture((300, 200)))[:400]), "truncated"),
    "truncated.jpg": (write(lambda: jpeg_bytes(picture((300, 200)))[:600]), "truncated"),
    "png_signature_then_garbage.png": (write(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4), "image"),
    "text_named_like_a_photo.jpg": (write(b"hello, I am not a JPEG\n" * 20), "not an image"),
    "html_named.webp": (write(b"<!doctype html><title>404</title>"), "not an image"),
    "iphone_photo.heic": (write(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64), "pillow-heif"),
    "notes.txt": (write(b"shopping list"), "not an image file type ('.txt')"),
    "README": (write(b"no extension"), "not an image file type (no extension)"),
    "data.csv": (write(b"a,b\n1,2\n"), "not an image file type ('.csv')"),
    # refused before decoding
    "bomb_50000x50000.png": (write(lambda: png_header_only(50_000, 50_000)), "decompression bomb"),
    "huge_12000x10000.png": (write(lambda: png_header_only(12_000, 10_000)), "pixel limit"),
    # a few hundred bytes whose resize to the model's input would take gigabytes
    "strip_100000x1.png": (lambda p: save(Image.new("RGB", (100_000, 1), (200, 0, 0)), p), "elongated"),
    "strip_20000x5.png": (lambda p: save(Image.new("L", (20_000, 5), 90), p), "elongated"),
    "tall_strip_3x40000.gif": (lambda p: save(Image.new("P", (3, 40_000)), p, format="GIF"), "elongated"),
    "very_wide_2000x5.png": (lambda p: save(picture().resize((2000, 5)), p), "elongated"),
    "bomb_60000x60000.gif": (write(lambda: gif_header_only(60_000, 60_000)), "decompression bomb"),
    # file-system trouble
    "symlink_loop.png": (link("self"), "symbolic link loop"),
    "dangling_link.jpg": (link("does-not-exist.jpg"), "broken symbolic link"),
    "named_pipe.png": (fifo, "not a regular file"),
    "link_to_dev_zero.png": (link("/dev/zero"), "not a regular file"),  # endless: must never be read
    # unusual but valid: must index
    "palette_transparent.png": (palette_with_transparency, None),
    "rgba.png": (lambda p: save(picture().convert("RGBA"), p), None),
    "la.png": (lambda p: save(picture().convert("LA"), p), None),
    "grayscale.jpg": (lambda p: save(picture().convert("L"), p, format="JPEG"), None),
    "cmyk.jpg": (cmyk_jpeg, None),
    "sixteen_bit.png": (sixteen_bit_png, None),
    "one_bit.png": (lambda p: save(picture().convert("1"), p), None),
    "exif_rotated.jpg": (lambda p: exif_jpeg(p, 6), None),
    "animated.gif": (
        lambda p: animated(p, [picture(), picture(seed=5).transpose(Image.Transpose.FLIP_LEFT_RIGHT)]),
        None,
    ),
    "png_content.jpg": (image_as(format="PNG"), None),
    "tiny_1x1.png": (lambda p: save(Image.new("RGB", (1, 1), (9, 9, 9)), p), None),
    "wide_1000x10.png": (lambda p: save(picture().resize((1000, 10)), p), None),
    "tall_10x1000.png": (lambda p: save(picture().resize((10, 1000)), p), None),
    "multipage.tiff": (lambda p: animated(p, [picture(), picture(seed=3)], format="TIFF"), None),
    "bitmap.bmp": (image_as(format="BMP"), None),
    "damaged_exif.jpg": (lambda p: save(picture(), p, format="JPEG", exif=b"Exif\0\0garbage-not-tiff"), None),
    "name with spaces.png": (image_as(), None),
    "café crème 日本 📷.png": (image_as(), None),
    "UPPER.JPEG": (image_as(format="JPEG"), None),
    # names that would steer a terminal or break a table row
    "ansi_\x1b[31mred\x1b[0m.png": (image_as(), None),
    "line\nbreak\r.png": (image_as(), None),
    "title_\x1b]0;pwned\x07.txt": (write(b"x"), "not an image file type ('.txt')"),
}
if sys.platform.startswith("linux"):  # other systems allow only UTF-8 names
    CASES["latin1_caf\udce9.png"] = (image_as(), None)  # the byte 0xE9, not UTF-8
if features.check("webp"):
    CASES["animated.webp"] = (lambda p: animated(p, [picture(), picture(seed=7)], format="WEBP", lossless=True), None)

BAD = sorted(name for name, (_, expected) in CASES.items() if expected)
GOOD = sorted(name for name, (_, expected) in CASES.items() if not expected)


def build(folder, name):
    return CASES[name][0](folder / name)


def test_corpus_size():
    """The number of bad-input cases this file covers (reported in the engineering notes)."""
    assert len(CASES) >= 44 and len(BAD) >= 22 and len(GOOD) >= 22


@pytest.mark.parametrize("name", BAD)
def test_bad_file_is_skipped_with_its_reason(tiny_embedder, tmp_path, name):
    path = build(tmp_path, name)
    result = run_with_a_deadline(lambda: embed_files(tiny_embedder, [path]), fifos=[path])
    if "not an image file type" in CASES[name][1]:
        # the folder scan filters non-image types; handed over directly they fail as images
        assert result.kept == [] and len(result.skipped) == 1
        return
    assert result.kept == [] and result.vectors.shape == (0, tiny_embedder.dim)
    assert len(result.skipped) == 1 and result.skipped[0]["path"] == str(path)
    assert CASES[name][1] in result.skipped[0]["reason"]


@pytest.mark.parametrize("name", GOOD)
def test_unusual_file_is_indexed(tiny_embedder, tmp_path, name):
    path = build(tmp_path, name)
    result = embed_files(tiny_embedder, [path])
    assert result.skipped == [] and result.kept == [0]
    assert np.isclose(np.linalg.norm(result.vectors[0]), 1.0, atol=1e-5)


def test_worker_processes_skip_and_keep_exactly_what_threads_do(tiny_embedder, tmp_path):
    paths = [build(tmp_path, name) for name in CASES]
    threads = run_with_a_deadline(
        lambda: embed_files(tiny_embedder, paths, batch_size=4, workers=2, parallel="threads"), fifos=paths
    )
    processes = run_with_a_deadline(
        lambda: embed_files(tiny_embedder, paths, batch_size=4, workers=2, parallel="processes"), fifos=paths
    )
    assert processes.settings["parallel"] == "processes"
    assert processes.skipped == threads.skipped and len(processes.skipped) >= len(BAD)
    assert processes.kept == threads.kept and len(processes.kept) >= len(GOOD)
    np.testing.assert_allclose(processes.vectors, threads.vectors, atol=1e-6)


def test_whole_corpus_in_one_folder_via_the_cli(tiny_clip_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_CLIP_MODEL", str(tiny_clip_dir))
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "photos"
    folder.mkdir()
    fifos = [build(folder, name) for name in CASES]
    argv = ["index", str(folder), "--out", str(tmp_path / "i.npz"), "--json"]
    assert run_with_a_deadline(lambda: main(argv), fifos=fifos) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["indexed"] == len(GOOD)
    reasons = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert sorted(reasons) == BAD
    for name in BAD:
        assert CASES[name][1] in reasons[name], (name, reasons[name])
    from course_utils.index import ImageIndex

    index = ImageIndex.load(tmp_path / "i.npz")
    assert sorted(p.name for p in index.products) == sorted(Product.from_file_name(Path(n).stem).name for n in GOOD)
    assert Product.from_file_name("café crème 日本 📷") in index.products


def test_tables_show_file_names_escaped(tiny_clip_dir, tmp_path, monkeypatch, capsys):
    """Escape codes, line breaks and undecodable bytes in file names are shown as escapes, never sent raw."""
    monkeypatch.setenv("COURSE_CLIP_MODEL", str(tiny_clip_dir))
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "photos"
    folder.mkdir()
    odd = [name for name in CASES if not name.isprintable() or not name.isascii()]
    for name in odd:
        build(folder, name)
    index_file = str(tmp_path / "i.npz")
    assert main(["index", str(folder), "--out", index_file]) == 0
    assert main(["search", "red", "--index", index_file, "-k", "9"]) == 0
    out = capsys.readouterr().out
    for line in out.splitlines():
        assert line.isprintable() and "\x1b" not in line, repr(line)
    assert "\\x1b[31mred" in out and "line\\nbreak\\r.png" in out and "title_\\x1b]0;pwned\\x07.txt" in out
    if sys.platform.startswith("linux"):
        assert "latin1_caf\\udce9.png" in out


def test_unreadable_file_is_skipped(tiny_embedder, tmp_path, monkeypatch):
    path = save(picture(), tmp_path / "secret.png")
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything: simulate the permission error
        real_open = decoding._open

        def refuse(file, *args, **kwargs):
            if Path(file) == path:
                raise PermissionError(errno.EACCES, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(decoding, "_open", refuse)
    good = save(picture(seed=2), tmp_path / "fine.png")
    result = embed_files(tiny_embedder, [path, good])
    path.chmod(0o644)
    assert result.kept == [1]
    assert result.skipped == [{"path": str(path), "reason": "permission denied"}]


def test_a_directory_passed_as_an_image(tiny_embedder, tmp_path):
    (tmp_path / "album.jpg").mkdir()
    result = embed_files(tiny_embedder, [tmp_path / "album.jpg"])
    assert result.skipped[0]["reason"] == "is a directory, not an image"


def test_a_looping_folder_link_does_not_trap_the_scan(tiny_embedder, tmp_path):
    save(picture(), tmp_path / "a.png")
    (tmp_path / "sub").mkdir()
    os.symlink(tmp_path, tmp_path / "sub" / "back_to_top")  # a folder loop
    index = index_folder(tmp_path, tiny_embedder, cache=False)
    assert [p.name for p in index.products] == ["a"]


@pytest.mark.parametrize(
    "orientation, turn",
    [(3, Image.Transpose.ROTATE_180), (6, Image.Transpose.ROTATE_270), (8, Image.Transpose.ROTATE_90)],
)
def test_exif_rotation_is_applied(tiny_embedder, tmp_path, orientation, turn):
    path = exif_jpeg(tmp_path / f"rotated_{orientation}.jpg", orientation)
    with Image.open(path) as raw:  # the pixels as stored, turned by hand
        stored = raw.convert("RGB")
    by_hand = stored.transpose(turn)
    got = embed_files(tiny_embedder, [path]).vectors[0]
    np.testing.assert_allclose(got, embed_files(tiny_embedder, [by_hand]).vectors[0], atol=1e-5)
    assert np.abs(got - embed_files(tiny_embedder, [stored]).vectors[0]).max() > 1e-3  # the turn mattered
    assert open_image(path).size == by_hand.size


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animations_use_their_first_frame(tiny_embedder, tmp_path, fmt):
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("Pillow was built without WebP")
    first, second = picture(), picture(seed=6).transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    extra = {"lossless": True} if fmt == "WEBP" else {}
    path = animated(tmp_path / f"anim.{fmt.lower()}", [first, second], format=fmt, **extra)
    with Image.open(path) as check:
        assert check.n_frames == 2
        check.seek(0)
        frame0 = check.convert("RGB")
    got = embed_files(tiny_embedder, [path]).vectors[0]
    np.testing.assert_allclose(got, embed_files(tiny_embedder, [frame0]).vectors[0], atol=1e-5)
    assert np.abs(got - embed_files(tiny_embedder, [second]).vectors[0]).max() > 1e-3


def test_transparent_pixels_index_as_white(tiny_embedder, tmp_path):
    clear = save(Image.new("RGBA", (50, 40), (255, 0, 0, 0)), tmp_path / "clear.png")
    white = Image.new("RGB", (50, 40), (255, 255, 255))
    np.testing.assert_allclose(
        embed_files(tiny_embedder, [clear]).vectors, embed_files(tiny_embedder, [white]).vectors, atol=1e-5
    )


def test_bombs_are_refused_from_the_header_without_decoding(tiny_embedder, tmp_path, monkeypatch):
    from PIL import ImageFile

    decoded = []
    real_load = ImageFile.ImageFile.load

    def spy(self):
        decoded.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    paths = [build(tmp_path, name) for name in ("bomb_50000x50000.png", "huge_12000x10000.png", "strip_100000x1.png")]
    result = embed_files(tiny_embedder, paths)
    assert len(result.skipped) == 3 and decoded == []


def test_a_strip_is_refused_before_its_resize_takes_memory(tmp_path):
    """The 372-byte 100000x1 PNG that made `index` take 11 GB: refused from its header, with the ratio."""
    path = build(tmp_path, "strip_100000x1.png")
    assert path.stat().st_size < 2000
    with pytest.raises(UnusableImage, match=r"100000x1 pixels .*elongated.*100000:1"):
        open_image(path)
    with pytest.raises(UnusableImage, match="elongated"):
        open_image(Image.new("RGB", (1, 500)))  # an image in memory is held to the same bound


def test_an_allowed_large_image_brings_no_pillow_warning(tmp_path):
    """10000x9999 is under the course's limit: Pillow must not warn about a decompression bomb."""
    path = write(lambda: png_header_only(10_000, 9_999))(tmp_path / "big_10000x9999.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(UnusableImage, match="truncated|damaged"):  # only a header: the size check passed
            open_image(path)
    assert [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)] == []


def test_the_cli_shows_no_pillow_warning_for_a_refused_image(tiny_clip_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_CLIP_MODEL", str(tiny_clip_dir))
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    build(tmp_path, "huge_12000x10000.png")
    save(picture(), tmp_path / "fine.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["index", str(tmp_path), "--out", str(tmp_path / "i.npz")]) == 0
    assert "pixel limit" in capsys.readouterr().out  # the refusal is reported as a skipped file
    assert [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)] == []


def test_big_jpeg_is_decoded_at_reduced_scale(tiny_embedder, tmp_path):
    big = picture((4000, 3000)).resize((4000, 3000))
    path = save(big, tmp_path / "big.jpg", format="JPEG", quality=90)
    assert open_image(path).size == (4000, 3000)
    assert open_image(path, min_size=32).size == (500, 375)  # 1/8 scale, still >= 32 on both sides
    fast = embed_files(tiny_embedder, [path]).vectors[0]
    full = embed_files(tiny_embedder, [path], draft=False).vectors[0]
    assert float(fast @ full) > 0.99
