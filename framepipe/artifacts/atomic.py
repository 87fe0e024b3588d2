"""Whole-or-nothing file writes: temporary name in the same folder, fsync, rename, fsync the folder.

Example:
    >>> import tempfile, pathlib
    >>> from framepipe.artifacts.atomic import write_atomic
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_atomic(folder / "class_names.txt", b"cat\\ndog")
    >>> (folder / "class_names.txt").read_text()
    'cat\\ndog'
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

CHUNK = 1 << 20


def fsync_dir(folder: Path) -> None:
    """Make renames and unlinks in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), 0o644)  # mkstemp makes 0600; a shared cache must stay readable
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_synced(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (a temporary name, created anew: a link planted there is replaced,
    never followed) and fsync it; the caller renames it later."""
    from framepipe.artifacts.safe_files import open_new

    with open_new(path) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
