"""Writing into a cache that other users can write to as well (Roboflow's default is ``/tmp/cache``).

Another user can plant a symlink, or a hard link, where framepipe is about to write, so that the
victim's download overwrites or appends to a file of the victim's outside the cache. Here every
temporary file is created anew (``O_CREAT | O_EXCL | O_NOFOLLOW``, after removing whatever held
the name), a partial file is resumed only when it is a regular file with one link that this user
owns, and framepipe's own folders (``_file_locks``) must be real folders.

Example:
    >>> import tempfile, pathlib, os
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> os.symlink("/etc/hostname", folder / ".weights.onnx.part")
    >>> resumable(folder / ".weights.onnx.part")
    False
    >>> with open_new(folder / ".weights.onnx.part") as f:  # the link is replaced, /etc/hostname untouched
    ...     _ = f.write(b"x")
    >>> (folder / ".weights.onnx.part").is_symlink()
    False
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path
from typing import BinaryIO

from framepipe.errors import ModelCacheError

logger = logging.getLogger("framepipe.artifacts")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)


def _mine(info: os.stat_result) -> bool:
    return not hasattr(os, "geteuid") or info.st_uid == os.geteuid()


def resumable(path: Path) -> bool:
    """Whether ``path`` may be continued: a regular file (not a link), with a single name, owned by
    this user. Anything else at a temporary name was not left by this user's own download."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_nlink == 1 and _mine(info)


def _remove(path: Path) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)  # removes a link itself, never its target


def open_new(path: Path) -> BinaryIO:
    """``path`` created anew for writing (whatever held the name is removed first; links are
    never followed), mode 0644 so that other users of a shared cache can read it."""
    _remove(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _BINARY, 0o644)
    return os.fdopen(fd, "wb")


def open_append(path: Path) -> BinaryIO | None:
    """``path`` opened to append to, when it is ``resumable`` (checked on the open file, so that it
    cannot be swapped between the check and the open); ``None`` otherwise."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | _NOFOLLOW | _BINARY)
    except OSError:
        return None
    info = os.fstat(fd)
    if not (stat.S_ISREG(info.st_mode) and info.st_nlink == 1 and _mine(info)):
        os.close(fd)
        return None
    return os.fdopen(fd, "ab")


def open_read(path: Path) -> BinaryIO:
    """``path`` opened for reading without following a link at its last component."""
    return os.fdopen(os.open(path, os.O_RDONLY | _NOFOLLOW | _BINARY), "rb")


def real_folder(path: Path, what: str) -> None:
    """Make ``path`` a folder if missing; ``ModelCacheError`` when it is a symlink or not a folder
    (a link would put framepipe's files wherever its owner wants)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        path.mkdir(parents=True, exist_ok=True)
        info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise ModelCacheError(
            f"refused {what} {path}: it is a symlink (to {os.readlink(path)}), which would put framepipe's files "
            f"outside the cache; remove it (framepipe cache doctor --fix) or set MODEL_CACHE_DIR to a private folder"
        )
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(20, "not a folder", str(path))


_warned: set[str] = set()


def warn_if_shared(root: Path) -> None:
    """Warn (once per folder) when the cache folder belongs to another user and others may write
    to it, as pip and huggingface_hub do: its contents are only as trustworthy as every one of them."""
    key = str(root)
    if key in _warned or not hasattr(os, "geteuid"):
        return
    try:
        info = os.stat(root)
    except OSError:
        return
    if info.st_uid != os.geteuid() and info.st_mode & (stat.S_IWOTH | stat.S_IWGRP):
        _warned.add(key)
        logger.warning(
            "the model cache %s is owned by another user (uid %d) and writable by others (mode %o): anyone who can "
            "write there can replace the models this process loads. Set MODEL_CACHE_DIR to a folder of your own",
            root,
            info.st_uid,
            stat.S_IMODE(info.st_mode),
        )
