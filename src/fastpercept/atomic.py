"""Atomic file replacement: a reader sees the old file or the new one, never half of one.

The one way every file of ours is written (images, model files, checkpoints, cached weights):
into a hidden temporary file in the target's folder, flushed to disk, then renamed over the
target. On any failure the temporary file is removed and an existing target is unchanged.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


# The longest file name most file systems take (NAME_MAX: ext4, XFS, APFS, NTFS in UTF-16 units).
NAME_MAX = 255
_TEMP_EXTRA = len(".") + len(".") + 8 + len(".tmp")  # mkstemp's random part is 8 characters


def _temp_prefix(target: Path) -> str:
    """The hidden temporary name's prefix for ``target``: ``.NAME.``, NAME shortened (by whole
    characters) so that the temporary name stays within NAME_MAX bytes wherever NAME does."""
    name = target.name
    while len(os.fsencode(name)) > NAME_MAX - _TEMP_EXTRA:
        name = name[:-1]
    return f".{name}."


def _new_file_mode(target: Path) -> int:
    """Permissions for the new file: those of the file it replaces, else 0o666 minus umask.

    mkstemp creates 0o600 files, which would make every output private to its owner.
    """
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; it replaces ``path`` on success.

    Missing parent folders are created. Errors (``OSError`` from the file system, anything
    raised inside the block) propagate after the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # the data reaches the disk before the rename makes it visible
            os.fsync(f.fileno())
        os.chmod(tmp, _new_file_mode(path))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder to fill; it becomes ``path`` on success (a folder of frames).

    ``path`` must not exist, or be an empty folder (replaced). On any failure the temporary
    folder and what it holds are removed.
    """
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp"))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if path.is_dir():
            path.rmdir()  # empty, or this raises: frames of another clip are never mixed in
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
