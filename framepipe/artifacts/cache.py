"""The model cache on disk: what state a model's folder is in, and listing, verifying, removing and
pruning cached models.

Layout (Roboflow's): ``<cache>/<dataset_id>/<version_id>/`` holding ``weights.onnx`` (or
``yolov5s_weights.onnx``), ``environment.json``, ``class_names.txt``, ``model_type.json`` and
optionally ``keypoints_metadata.json``; framepipe adds ``.framepipe.json`` (its manifest) and keeps
locks in ``<cache>/_file_locks/``. A folder Roboflow Inference wrote has no manifest and is read
as it is.

Example:
    >>> from framepipe.artifacts.cache import ModelCache
    >>> cache = ModelCache()  # $MODEL_CACHE_DIR, or ~/.cache/framepipe/models
    >>> for entry in cache.entries():  # doctest: +SKIP
    ...     print(entry.model_id, entry.size, entry.state.value)
    coco/3 12591274 complete
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from framepipe.artifacts.atomic import sha256_file
from framepipe.artifacts.folder import read_model_type, weights_in
from framepipe.artifacts.in_use import hold_exclusive, try_exclusive
from framepipe.artifacts.layout import MODEL_TYPE_FILE, WEIGHTS_FILE_NAMES
from framepipe.artifacts.locking import LOCKS_FOLDER, lock_path, model_lock, try_model_lock
from framepipe.artifacts.manifest import JOURNAL_NAME, Manifest, now_iso, read_manifest, write_manifest
from framepipe.artifacts.model_id import ModelRef, model_folder, parse_model_id
from framepipe.artifacts.settings import DEFAULT_LOCK_TIMEOUT_S
from framepipe.errors import (
    FramepipeError,
    ModelArtifactError,
    ModelCacheError,
    ModelCacheLockTimeout,
    ModelNotFoundError,
)

logger = logging.getLogger("framepipe.artifacts")


def default_cache_dir() -> Path:
    """``$MODEL_CACHE_DIR`` when set (Roboflow's variable; its default ``/tmp/cache`` works when set
    to it), else ``$XDG_CACHE_HOME/framepipe/models`` (``~/.cache/framepipe/models``)."""
    configured = os.environ.get("MODEL_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "framepipe" / "models"


class CacheState(str, Enum):
    """What a model folder holds."""

    MISSING = "missing"
    """No weights file."""
    COMPLETE = "complete"
    """Written by framepipe; every file has the size its manifest records."""
    FOREIGN = "foreign"
    """Written by another tool (Roboflow Inference): weights present, no manifest; read as is."""
    INTERRUPTED = "interrupted"
    """A download stopped half-way (journal left behind); the next online load finishes it."""
    CORRUPT = "corrupt"
    """A file disagrees with the manifest, or ``model_type.json`` is invalid; never loaded."""

    @property
    def usable(self) -> bool:
        return self in (CacheState.COMPLETE, CacheState.FOREIGN)


@dataclass(frozen=True)
class Inspection:
    """The state of one model folder and why."""

    state: CacheState
    folder: Path
    detail: str = ""
    manifest: Manifest | None = None
    weights: Path | None = None


def _check_model_type(folder: Path) -> str | None:
    path = folder / MODEL_TYPE_FILE
    if not path.is_file():
        return None
    try:
        read_model_type(path)
    except (ModelArtifactError, OSError) as error:
        return str(error)
    return None


def inspect_folder(folder: Path) -> Inspection:
    """The state of a model folder from cheap checks only (sizes, not hashes)."""
    if (folder / JOURNAL_NAME).exists():
        return Inspection(CacheState.INTERRUPTED, folder, f"a download into {folder} was interrupted")
    try:
        manifest = read_manifest(folder)
    except FramepipeError as error:
        return Inspection(CacheState.CORRUPT, folder, str(error))
    if manifest is not None:
        if manifest.bad_files:
            return Inspection(
                CacheState.CORRUPT,
                folder,
                f"{', '.join(manifest.bad_files)} in {folder} failed verification (sha256 mismatch)",
                manifest,
            )
        for name, record in manifest.files.items():
            try:
                size = (folder / name).stat().st_size
            except OSError:
                return Inspection(CacheState.CORRUPT, folder, f"{folder / name} is missing", manifest)
            if size != record.size:
                return Inspection(
                    CacheState.CORRUPT,
                    folder,
                    f"{folder / name} is {size} bytes but its manifest says {record.size}",
                    manifest,
                )
        weights = next((folder / n for n in WEIGHTS_FILE_NAMES if n in manifest.files), None)
        if weights is None:
            return Inspection(CacheState.CORRUPT, folder, f"the manifest in {folder} lists no weights file", manifest)
        problem = _check_model_type(folder)
        if problem:
            return Inspection(CacheState.CORRUPT, folder, problem, manifest)
        return Inspection(CacheState.COMPLETE, folder, "", manifest, weights)
    weights = weights_in(folder)
    if weights is None:
        return Inspection(CacheState.MISSING, folder, f"{folder} has no {' or '.join(WEIGHTS_FILE_NAMES)}")
    problem = _check_model_type(folder)
    if problem:
        return Inspection(CacheState.CORRUPT, folder, problem, None, weights)
    return Inspection(CacheState.FOREIGN, folder, "", None, weights)


def verify_hashes(folder: Path, manifest: Manifest) -> list[str]:
    """Re-hash every file the manifest lists; the names of those that disagree."""
    bad = []
    for name, record in sorted(manifest.files.items()):
        path = folder / name
        try:
            if path.stat().st_size != record.size or sha256_file(path) != record.sha256:
                bad.append(name)
        except OSError:
            bad.append(name)
    return bad


_SIZE = re.compile(r"\s*([0-9]{1,15}(?:\.[0-9]{1,9})?)\s*([kmgt]?)(i?b?)\s*", re.IGNORECASE)


def parse_size(text: str) -> int:
    """A byte count from ``500M``, ``2G``, ``1.5GiB``, ``800MB`` or ``123``.

    ``K``, ``M``, ``G``, ``T`` and ``KiB``... are powers of 1024; ``KB``, ``MB``... powers of 1000.

    Example:
        >>> parse_size("2G"), parse_size("2GB"), parse_size("512")
        (2147483648, 2000000000, 512)
    """
    match = _SIZE.fullmatch(text)
    if not match:
        raise ValueError(f"size {text!r} is not a number with an optional K/M/G/T suffix (e.g. 500M, 2G)")
    number, unit, tail = float(match.group(1)), match.group(2).lower(), match.group(3).lower()
    if not unit and tail:
        if tail != "b":
            raise ValueError(f"size {text!r}: unknown unit")
        return int(number)
    power = "kmgt".index(unit) + 1 if unit else 0
    base = 1000 if tail == "b" else 1024
    return int(number * base**power)


@dataclass(frozen=True)
class CacheEntry:
    """One cached model as ``framepipe cache list`` shows it."""

    model_id: str
    folder: Path
    size: int
    last_used: float
    state: CacheState
    detail: str = ""
    verified_at: str | None = None
    registry_sha256: bool = True
    """False when the registry announced no sha256 for a downloaded file (Roboflow's case): the
    manifest's hashes were taken on arrival and prove the files unchanged since, no more."""


@dataclass(frozen=True)
class PruneResult:
    """What ``ModelCache.prune`` removed and what it left because it was in use."""

    removed: list[CacheEntry]
    skipped_in_use: list[CacheEntry]
    size_before: int
    size_after: int


def _folder_size(folder: Path) -> int:
    """The bytes of the files in ``folder``; files (or the folder) removed meanwhile count 0."""
    total = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
    return total


class ModelCache:
    """The model cache at ``root`` (default ``default_cache_dir()``).

    Example:
        >>> cache = ModelCache("/tmp/cache")  # Roboflow Inference's default location
        >>> cache.folder("coco/3")
        PosixPath('/tmp/cache/coco/3')
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.lock_timeout_s = lock_timeout_s

    def __repr__(self) -> str:
        return f"ModelCache({str(self.root)!r})"

    def folder(self, model_id: str | ModelRef) -> Path:
        """The folder of ``model_id`` (checked to stay inside the cache)."""
        ref = model_id if isinstance(model_id, ModelRef) else parse_model_id(model_id)
        return model_folder(self.root, ref)

    def inspect(self, model_id: str | ModelRef) -> Inspection:
        """The state of ``model_id``'s folder (cheap checks)."""
        return inspect_folder(self.folder(model_id))

    def model_refs(self) -> list[ModelRef]:
        """Every ``dataset/version`` folder in the cache that holds something."""
        refs: list[ModelRef] = []
        if not self.root.is_dir():
            return refs
        for dataset in sorted(_listing(self.root)):
            if not dataset.is_dir() or dataset.name == LOCKS_FOLDER:
                continue
            for version in sorted(_listing(dataset)):
                if not version.is_dir():
                    continue
                try:
                    refs.append(parse_model_id(f"{dataset.name}/{version.name}"))
                except FramepipeError:
                    continue
        return refs

    def last_used(self, ref: ModelRef) -> float:
        """When the model was last loaded (its lock file's time), else its newest file's time."""
        try:
            return lock_path(self.root, ref).stat().st_mtime
        except OSError:
            pass
        times = []
        with contextlib.suppress(OSError):  # the folder may go while it is looked at
            for entry in os.scandir(self.folder(ref)):
                with contextlib.suppress(OSError):
                    if entry.is_file():
                        times.append(entry.stat().st_mtime)
        return max(times, default=0.0)

    def entry(self, ref: ModelRef) -> CacheEntry:
        """The listing line of one model."""
        inspection = inspect_folder(self.folder(ref))
        folder = inspection.folder
        return CacheEntry(
            model_id=ref.model_id,
            folder=folder,
            size=_folder_size(folder) if folder.is_dir() else 0,
            last_used=self.last_used(ref),
            state=inspection.state,
            detail=inspection.detail,
            verified_at=inspection.manifest.verified_at if inspection.manifest else None,
            registry_sha256=not inspection.manifest
            or all(r.announced is None or "sha256" in r.announced for r in inspection.manifest.files.values()),
        )

    def entries(self) -> list[CacheEntry]:
        """Every cached model, most recently used first."""
        found = [self.entry(ref) for ref in self.model_refs()]
        return sorted(found, key=lambda e: e.last_used, reverse=True)

    def verify(self, model_id: str | ModelRef) -> CacheEntry:
        """Re-hash every file of a model against its manifest.

        A model whose files disagree is marked in its manifest (``bad_files``) and never loaded
        again until downloaded anew; one that agrees gets a new ``verified_at``. Folders without a
        manifest (written by Roboflow Inference) have no hashes to compare: they are reported
        ``foreign`` with their ``model_type.json`` checked.
        """
        ref = model_id if isinstance(model_id, ModelRef) else parse_model_id(model_id)
        folder = self.folder(ref)
        with self._writing(ref, "cache verify"), model_lock(self.root, ref, self.lock_timeout_s, folder):
            inspection = inspect_folder(folder)
            manifest = inspection.manifest
            if manifest is not None and inspection.state in (CacheState.COMPLETE, CacheState.CORRUPT):
                bad = verify_hashes(folder, manifest)
                updated = replace(
                    manifest, bad_files=tuple(bad), verified_at=manifest.verified_at if bad else now_iso()
                )
                write_manifest(folder, updated)
                if bad:
                    logger.error("%s: %s failed verification", ref.model_id, ", ".join(bad))
        if inspection.state is CacheState.MISSING and not folder.exists():
            raise ModelNotFoundError(f"model {ref.model_id!r} is not in the cache ({folder} does not exist)")
        return self.entry(ref)

    @contextlib.contextmanager
    def _writing(self, ref: ModelRef, what: str) -> Iterator[None]:
        """Turn the ``OSError`` of a cache that cannot be written (read-only, baked into an image,
        ``_file_locks`` not a folder) into a ``ModelCacheError`` that says so."""
        try:
            yield
        except (ModelCacheLockTimeout, ModelCacheError):
            raise
        except OSError as error:
            raise ModelCacheError(
                f"{what} cannot lock or write model {ref.model_id!r} in {self.root} ({error.strerror or error}, "
                f"under {self.root / LOCKS_FOLDER}): it needs the cache to be writable; a read-only cache can only "
                "be read (framepipe cache list)"
            ) from None

    def remove(self, model_id: str | ModelRef, timeout_s: float = 10.0) -> Path:
        """Delete a model's folder, waiting up to ``timeout_s`` for a load of it to finish."""
        ref = model_id if isinstance(model_id, ModelRef) else parse_model_id(model_id)
        folder = self.folder(ref)
        if not folder.exists():
            raise ModelNotFoundError(f"model {ref.model_id!r} is not in the cache ({folder} does not exist)")
        try:
            with self._writing(ref, "cache rm"):
                in_use = hold_exclusive(self.root, ref, timeout_s)  # first, in the order loads take them
            try:
                with self._writing(ref, "cache rm"), model_lock(self.root, ref, timeout_s, folder):
                    shutil.rmtree(folder, ignore_errors=True)
            finally:
                in_use.release()
        except ModelCacheLockTimeout:
            raise ModelCacheLockTimeout(
                f"model {ref.model_id!r} is in use (being loaded or downloaded, or loaded by a running process); "
                "try again when it is done"
            ) from None
        _remove_empty(folder.parent)
        return folder

    def prune(self, max_bytes: int) -> PruneResult:
        """Remove least recently used models until the cache holds at most ``max_bytes``.

        A model whose lock is held (being loaded or downloaded) is skipped, never removed.
        """
        entries = sorted(self.entries(), key=lambda e: e.last_used)
        before = sum(e.size for e in entries)
        total = before
        removed: list[CacheEntry] = []
        skipped: list[CacheEntry] = []
        for entry in entries:
            if total <= max_bytes:
                break
            ref = parse_model_id(entry.model_id)
            with self._writing(ref, "cache prune"):
                in_use = try_exclusive(self.root, ref)  # nobody is reading the folder
                lock = try_model_lock(self.root, ref) if in_use is not None else None  # nor writing it
            if in_use is None or lock is None:
                if in_use is not None:
                    in_use.release()
                skipped.append(entry)
                continue
            try:
                shutil.rmtree(entry.folder, ignore_errors=True)
            finally:
                lock.release()
                in_use.release()
            _remove_empty(entry.folder.parent)
            total -= entry.size
            removed.append(entry)
        return PruneResult(removed, skipped, before, total)


def _listing(folder: Path) -> list[Path]:
    """The entries of ``folder``; none when it went away meanwhile."""
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _remove_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


def format_size(size: float) -> str:
    """``3.0 MiB``-style size for listings."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def format_time(timestamp: float) -> str:
    """A local ``2026-11-24 00:12`` time, or ``never``."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp)) if timestamp else "never"
