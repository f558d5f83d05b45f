"""Which files of a folder are images to index, and which products they are.

Introduced in 06_exercises (exercise: index your own photos).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..catalog import Product, load_catalog
from ..errors import CourseError
from ..images import read_error_reason

__all__ = ["IGNORED_NAMES", "IMAGE_EXTENSIONS", "folder_inputs", "scan_folder"]

#: File types a photo folder is scanned for (anything Pillow reads; HEIC gets a hint to install pillow-heif).
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .apng .gif .webp .bmp .dib .tif .tiff .ppm .pgm .pbm .pnm .tga .ico .avif".split()
    + [".heic", ".heif"]
)
#: Files in an image folder that are part of it but not images: never reported as skipped.
IGNORED_NAMES = frozenset({"catalog.json", "Thumbs.db", "desktop.ini"})


def scan_folder(folder: str | os.PathLike) -> tuple[list[Path], list[dict]]:
    """Image files under ``folder`` (recursively, sorted), and the other files as ``{"path", "reason"}``.

    Introduced in 06_exercises.

    Hidden files and folders, and ``catalog.json``, are ignored. Symbolic links to folders are not
    followed, so a link loop cannot trap the scan; a link that loops back on itself is reported.
    """
    folder = Path(folder)
    images: list[Path] = []
    skipped: list[dict] = []

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else folder
        skipped.append({"path": str(where), "reason": f"cannot list this folder ({read_error_reason(where, exc)})"})

    for root, dirs, files in os.walk(folder, onerror=unreadable, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or name in IGNORED_NAMES:
                continue
            path = Path(root) / name
            suffix = path.suffix.lower()
            if suffix in IMAGE_EXTENSIONS:
                images.append(path)
            else:
                what = f"'{suffix}'" if suffix else "no extension"
                skipped.append({"path": str(path), "reason": f"not an image file type ({what})"})
    images.sort(key=lambda p: str(p.relative_to(folder)))
    return images, skipped


def folder_inputs(
    folder: str | os.PathLike, catalog: str | os.PathLike | None = None
) -> tuple[list[Product], list[Path], list[dict]]:
    """Products, image paths and already-skipped files for a folder.

    With a ``catalog.json`` (in the folder or given) the catalog names the images
    (``<slug>.png``); without one every image file is a product named after its file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CourseError(f"{folder} is not a folder of images.")
    catalog_path = Path(catalog) if catalog else folder / "catalog.json"
    if catalog or catalog_path.is_file():
        products = load_catalog(catalog_path)
        return products, [folder / f"{p.slug}.png" for p in products], []
    paths, skipped = scan_folder(folder)
    return [Product.from_file_name(p.stem) for p in paths], paths, skipped
