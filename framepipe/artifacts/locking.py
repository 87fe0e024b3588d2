"""One lock per model, across threads and processes: whoever holds it downloads, the others wait.

The inter-process lock is a ``filelock`` file at ``<cache>/_file_locks/<dataset_id>/<version_id>.lock``
(``_file_locks`` is Roboflow's reserved lock folder, and this path is the per-model lock Roboflow
takes to clear a model from its cache). Threads of one process first queue on an in-process lock,
so one thread downloads and the others find the files in place.

The timeout (default 120 s, Roboflow's) counts from the last progress of the holder: a slow but
moving download is waited for; a stuck one ends the wait with ``ModelCacheLockTimeout``.

Example:
    >>> import tempfile, pathlib
    >>> from framepipe.artifacts.locking import model_lock
    >>> from framepipe.artifacts.model_id import parse_model_id
    >>> cache = pathlib.Path(tempfile.mkdtemp())
    >>> with model_lock(cache, parse_model_id("ds/3"), timeout_s=5):
    ...     pass
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from filelock import FileLock, Timeout

from framepipe.artifacts.model_id import ModelRef
from framepipe.artifacts.safe_files import real_folder
from framepipe.errors import ModelCacheLockTimeout

LOCKS_FOLDER = "_file_locks"
logger = logging.getLogger(__name__)

_registry_guard = threading.Lock()
_thread_locks: dict[str, threading.Lock] = {}


def lock_path(cache_dir: Path, ref: ModelRef) -> Path:
    """Where the lock file of ``ref`` lives."""
    return cache_dir / LOCKS_FOLDER / ref.dataset_id / f"{ref.version_id}.lock"


def _prepare(cache_dir: Path, ref: ModelRef) -> Path:
    """The lock file's path, its folders made (real folders, never symlinks) and any link planted
    at its name removed (a lock file holds nothing: it is made anew)."""
    path = lock_path(cache_dir, ref)
    if not cache_dir.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
    real_folder(cache_dir / LOCKS_FOLDER, "lock folder")
    real_folder(path.parent, "lock folder")
    if path.is_symlink():
        logger.warning("removed a symlink planted at the lock file %s (to %s)", path, os.readlink(path))
        path.unlink(missing_ok=True)
    return path


def _thread_lock(key: str) -> threading.Lock:
    with _registry_guard:
        return _thread_locks.setdefault(key, threading.Lock())


def progress_signature(folder: Path) -> tuple[tuple[str, int], ...]:
    """Names and sizes of the files in ``folder``: it changes while a download makes progress."""
    try:
        return tuple(sorted((entry.name, entry.stat().st_size) for entry in os.scandir(folder) if entry.is_file()))
    except OSError:
        return ()


def _wait(acquire: Callable[[float], bool], timeout_s: float, folder: Path, what: str) -> None:
    """Call ``acquire(slice)`` until it succeeds, giving up after ``timeout_s`` without progress."""
    signature = progress_signature(folder)
    deadline = time.monotonic() + timeout_s
    waited_note = False
    while True:
        remaining = deadline - time.monotonic()
        if acquire(max(0.0, min(0.5, remaining))):
            return
        if not waited_note:
            logger.info("waiting for another download of %s to finish", what)
            waited_note = True
        now = progress_signature(folder)
        if now != signature:
            signature, deadline = now, time.monotonic() + timeout_s
        elif time.monotonic() >= deadline:
            raise ModelCacheLockTimeout(
                f"gave up waiting for the download lock of {what} after {timeout_s:g} s without progress in {folder}; "
                "another process holds it (raise FRAMEPIPE_LOCK_TIMEOUT if downloads are this slow)"
            )


@contextmanager
def model_lock(cache_dir: Path, ref: ModelRef, timeout_s: float, folder: Path | None = None) -> Iterator[Path]:
    """Hold the lock of ``ref`` in ``cache_dir`` for the ``with`` block; yields the lock file path.

    ``folder`` (default: the model's folder) is watched for progress while waiting.
    """
    path = _prepare(cache_dir, ref)
    folder = folder if folder is not None else cache_dir / ref.dataset_id / ref.version_id
    thread_lock = _thread_lock(str(path.resolve()))
    _wait(lambda s: thread_lock.acquire(timeout=s), timeout_s, folder, ref.model_id)
    try:
        file_lock = FileLock(str(path))

        def try_file(slice_s: float) -> bool:
            try:
                file_lock.acquire(timeout=slice_s, poll_interval=0.02)
            except Timeout:
                return False
            return True

        _wait(try_file, timeout_s, folder, ref.model_id)
        try:
            yield path
        finally:
            file_lock.release()
    finally:
        thread_lock.release()


def try_model_lock(cache_dir: Path, ref: ModelRef) -> FileLock | None:
    """The lock of ``ref`` when it is free right now (the caller releases it), else ``None``.

    Used by ``cache rm`` and ``cache prune`` never to remove a model that is being loaded.
    """
    path = _prepare(cache_dir, ref)
    thread_lock = _thread_lock(str(path.resolve()))
    if not thread_lock.acquire(blocking=False):
        return None
    try:
        file_lock = FileLock(str(path))
        try:
            file_lock.acquire(timeout=0)
        except Timeout:
            return None
        return file_lock
    finally:
        thread_lock.release()


def touch(path: Path) -> None:
    """Set ``path``'s modification time to now (the lock file's time is the model's "last used")."""
    with suppress(OSError):
        os.utime(path)
