"""Writing, reading and naming files safely: the file-system helpers every layer uses."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import tempfile
import unicodedata
from pathlib import Path
from typing import BinaryIO

__all__ = ["NotRegularFile", "keyed_name", "open_regular", "slugify", "write_atomic"]


def slugify(text: str) -> str:
    """A file-name-safe version of ``text``: ASCII letters and digits joined by ``_``."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return slug or "product"


def keyed_name(key: str, readable: str, length: int = 40) -> str:
    """A short file name that belongs to ``key`` alone: ``<slug of readable>-<hash of key>``.

    The slug only helps a person find the file; the hash of the whole key tells files apart, so
    keys whose slugs are alike (``org/a-b`` and ``org/a_b``) or that differ only past the cut (a
    long folder name's ``@weight-hash``) never share a name.
    """
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{slugify(readable)[:length]}-{digest}"


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that readers see the old or the new content, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class NotRegularFile(OSError):
    """A FIFO, a device or a socket where a file was expected: reading one could block or never end."""


def open_regular(path: str | os.PathLike, *, follow_symlinks: bool = True) -> BinaryIO:
    """Open a regular file for reading in binary mode, and nothing else.

    The file is opened without blocking and checked before any byte is read, so a FIFO never
    hangs the caller and ``/dev/zero`` is never read. Raises :class:`IsADirectoryError` for a
    folder, :class:`NotRegularFile` for anything else that is not a regular file, and the usual
    :class:`OSError` subclasses (``FileNotFoundError``, ``PermissionError``...) as ``open`` does.
    With ``follow_symlinks=False`` a symbolic link is refused too (``ELOOP``).
    """
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_NONBLOCK", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except PermissionError:
        if os.path.isdir(path):  # Windows refuses to open a folder with "permission denied"
            raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path)) from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
        if not stat.S_ISREG(mode):
            raise NotRegularFile(errno.EINVAL, "Not a regular file", str(path))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # ordinary reads from here on
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
