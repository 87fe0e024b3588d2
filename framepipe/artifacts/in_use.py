"""The in-use lock: a process that reads a model's folder holds it shared until the model's
session is open (in practice, while its ``ModelArtifacts`` live); ``cache rm`` and ``cache prune``
take it exclusively, so that they never delete a model while another process loads it.

It is a ``flock`` on ``<cache>/_file_locks/<dataset>/<version>.inuse``, released by the kernel
when the process ends, however it ends. Where ``flock`` does not exist (Windows) it is a no-op:
there, files being read cannot be deleted anyway.

Example:
    >>> import tempfile, pathlib
    >>> from framepipe.artifacts.in_use import hold_shared, try_exclusive
    >>> from framepipe.artifacts.model_id import ModelRef
    >>> cache, ref = pathlib.Path(tempfile.mkdtemp()), ModelRef("ds", "3")
    >>> lease = hold_shared(cache, ref, timeout_s=5)
    >>> try_exclusive(cache, ref) is None  # being read: not removable now
    True
    >>> lease.release()
    >>> remover = try_exclusive(cache, ref)
    >>> remover is not None
    True
    >>> remover.release()
"""

from __future__ import annotations

import os
import time
import weakref
from pathlib import Path

from framepipe.artifacts.locking import LOCKS_FOLDER
from framepipe.artifacts.model_id import ModelRef
from framepipe.artifacts.safe_files import real_folder
from framepipe.errors import ModelCacheLockTimeout

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class Lease:
    """A held in-use lock; ``release()`` (or dropping the last reference) lets it go."""

    def __init__(self, fd: int, exclusive: bool) -> None:
        self.exclusive = exclusive
        self._finalizer = weakref.finalize(self, os.close, fd)

    @property
    def held(self) -> bool:
        return self._finalizer.alive

    def release(self) -> None:
        self._finalizer()

    def __repr__(self) -> str:
        kind = "exclusive" if self.exclusive else "shared"
        return f"Lease({kind}, {'held' if self.held else 'released'})"


def in_use_path(cache_dir: Path, ref: ModelRef) -> Path:
    """Where the in-use lock of ``ref`` lives."""
    return cache_dir / LOCKS_FOLDER / ref.dataset_id / f"{ref.version_id}.inuse"


def _open(cache_dir: Path, ref: ModelRef) -> int | None:
    if fcntl is None:
        return None
    path = in_use_path(cache_dir, ref)
    real_folder(cache_dir / LOCKS_FOLDER, "lock folder")
    real_folder(path.parent, "lock folder")
    if path.is_symlink():
        path.unlink(missing_ok=True)
    # read-only is enough for flock, so that every user of a shared cache can take it
    return os.open(path, os.O_RDONLY | os.O_CREAT | _NOFOLLOW, 0o644)


def _take(cache_dir: Path, ref: ModelRef, exclusive: bool, timeout_s: float | None) -> Lease | None:
    fd = _open(cache_dir, ref)
    if fd is None:
        return Lease(os.open(os.devnull, os.O_RDONLY), exclusive)
    assert fcntl is not None
    mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
    deadline = time.monotonic() + (timeout_s or 0.0)
    while True:
        try:
            fcntl.flock(fd, mode)
            return Lease(fd, exclusive)
        except BlockingIOError:
            if timeout_s is None or time.monotonic() >= deadline:
                os.close(fd)
                if timeout_s is None:
                    return None
                raise ModelCacheLockTimeout(
                    f"model {ref.model_id!r} stayed {'in use' if exclusive else 'locked for removal'} for "
                    f"{timeout_s:g} s ({in_use_path(cache_dir, ref)}); try again when it is done"
                ) from None
            time.sleep(0.005)
        except BaseException:
            os.close(fd)
            raise


def hold_shared(cache_dir: Path, ref: ModelRef, timeout_s: float) -> Lease:
    """Mark ``ref`` in use (shared with other readers), waiting up to ``timeout_s`` for a removal."""
    lease = _take(cache_dir, ref, False, timeout_s)
    assert lease is not None
    return lease


def try_exclusive(cache_dir: Path, ref: ModelRef) -> Lease | None:
    """The exclusive in-use lock when nobody reads ``ref`` right now, else ``None``."""
    return _take(cache_dir, ref, True, None)


def hold_exclusive(cache_dir: Path, ref: ModelRef, timeout_s: float) -> Lease:
    """The exclusive in-use lock, waiting up to ``timeout_s`` for readers to finish."""
    lease = _take(cache_dir, ref, True, timeout_s)
    assert lease is not None
    return lease
