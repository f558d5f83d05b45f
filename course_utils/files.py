"""Writing, reading and naming files safely: the file-system helpers every layer uses."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import stat
import unicodedata
from pathlib import Path
from typing import BinaryIO

__all__ = ["MAX_PLAIN_STEM", "NotRegularFile", "image_stem", "keyed_name", "open_regular", "slugify", "write_atomic"]


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


#: Names made of ASCII letters and digits in single-space-separated words: their slug loses only
#: the case, and names differing only in case are refused as duplicates, so the slug is unique.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9]+(?: [A-Za-z0-9]+)*")
MAX_PLAIN_STEM = 100


def image_stem(name: str) -> str:
    """The file name (without extension) of a product's image: unique per name, short and ASCII.

    A plain name keeps its readable slug (``Widget A`` -> ``widget_a``). Any other name (``widget-a``,
    ``Café``, ``赤い丸``, a very long one) would lose information in its slug, so it gets a hash of
    the whole name after a ``-``, which no plain slug contains: ``widget_a-1f0e3c9d2b7a``. The rule
    looks at one name only, so adding a product never renames another product's image.
    """
    if len(name) <= MAX_PLAIN_STEM and _PLAIN_NAME.fullmatch(name):
        return name.lower().replace(" ", "_")
    digest = hashlib.sha256(unicodedata.normalize("NFC", name).encode("utf-8", "surrogatepass")).hexdigest()
    return f"{slugify(name)[:40].rstrip('_')}-{digest[:12]}"


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write a file so that readers see the old or the new content, never half of one.

    A new file gets the mode any new file gets (0666 less the umask); a replaced file keeps its
    own. ``durable`` flushes the data to disk before the rename, so a power cut cannot leave an
    empty file under the name; derived data that is cheap to rebuild may skip it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        keep_mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        keep_mode = None
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # os.open with 0o666 lets the kernel apply the umask (mkstemp would make every file 0600)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if keep_mode is not None:
                os.chmod(tmp, keep_mode)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable too (POSIX; elsewhere there is nothing to do)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder; the file itself is on disk
    finally:
        os.close(fd)


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
