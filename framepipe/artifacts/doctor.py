"""``framepipe cache doctor``: what in a cache folder should not be there, and how to fix it.

It looks for symlinks (in ``_file_locks`` and in model folders: another user of a shared cache
may have planted them), folders owned by another user that others may write to, leftovers of
interrupted downloads (journals, ``.part`` files, temporary ``.tmp`` files) and damaged
manifests. Each finding says what ``--fix`` would do; ``fix`` does it, skipping models whose
lock is held (being downloaded or loaded right now).

Example:
    >>> from framepipe.artifacts.doctor import diagnose
    >>> from framepipe.artifacts.cache import ModelCache
    >>> for finding in diagnose(ModelCache("/tmp/cache")):  # doctest: +SKIP
    ...     print(finding)
    /tmp/cache/coco/3/.weights.onnx.part: a symlink (to /home/me/.bashrc); would remove the link
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from framepipe.artifacts.cache import CacheState, ModelCache, inspect_folder
from framepipe.artifacts.in_use import try_exclusive
from framepipe.artifacts.layout import MODEL_FILES, part_path
from framepipe.artifacts.locking import LOCKS_FOLDER, try_model_lock
from framepipe.artifacts.manifest import JOURNAL_NAME, MANIFEST_NAME
from framepipe.artifacts.model_id import ModelRef


@dataclass(frozen=True)
class Finding:
    """One problem: where, what, and what ``--fix`` does about it (``None``: nothing it can do)."""

    path: Path
    problem: str
    action: str | None
    ref: ModelRef | None = None
    repair: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        todo = f"would {self.action}" if self.action else "cannot be fixed here"
        return f"{self.path}: {self.problem}; {todo}"


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def _link(path: Path, ref: ModelRef | None) -> Finding:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    return Finding(path, f"a symlink (to {target})", "remove the link", ref, lambda: path.unlink(missing_ok=True))


def _foreign(path: Path, info: os.stat_result) -> Finding | None:
    if not hasattr(os, "geteuid") or info.st_uid == os.geteuid() or not info.st_mode & (stat.S_IWOTH | stat.S_IWGRP):
        return None
    return Finding(
        path,
        f"owned by another user (uid {info.st_uid}) and writable by others (mode {stat.S_IMODE(info.st_mode):o}): "
        "they can replace what this folder holds",
        None,
    )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _replace_with_folder(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.mkdir()


def _remover(path: Path) -> Callable[[], None]:
    return lambda: _remove(path)


def _clear(folder: Path) -> None:
    for name in (MANIFEST_NAME, JOURNAL_NAME, *MODEL_FILES):
        _remove(folder / name)
        _remove(part_path(folder / name))


def _model(cache: ModelCache, ref: ModelRef) -> list[Finding]:
    folder = cache.folder(ref)
    found: list[Finding] = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        path = Path(entry.path)
        if entry.is_symlink():
            found.append(_link(path, ref))
        elif entry.name.endswith(".tmp") and entry.name.startswith("."):
            problem = "a temporary file left by an interrupted write"
            found.append(Finding(path, problem, "remove it", ref, _remover(path)))
    inspection = inspect_folder(folder)
    if inspection.state is CacheState.INTERRUPTED:
        problem = f"model {ref.model_id} is an interrupted download (journal and .part files)"
        action = "remove what it left (the next online load downloads it whole)"
        found.append(Finding(folder, problem, action, ref, lambda: _clear(folder)))
    elif inspection.state is CacheState.CORRUPT and (inspection.manifest is None and (folder / MANIFEST_NAME).exists()):
        problem = f"model {ref.model_id}: {inspection.detail}"
        action = "remove the model's files (the next online load downloads it again)"
        found.append(Finding(folder / MANIFEST_NAME, problem, action, ref, lambda: _clear(folder)))
    info = _lstat(folder)
    if info is not None and (foreign := _foreign(folder, info)) is not None:
        found.append(foreign)
    return found


def diagnose(cache: ModelCache) -> list[Finding]:
    """Every problem in ``cache``'s folder (nothing is changed)."""
    root = cache.root
    info = _lstat(root)
    if info is None:
        return []
    found: list[Finding] = []
    if (foreign := _foreign(root, info)) is not None:
        found.append(foreign)
    locks = root / LOCKS_FOLDER
    locks_info = _lstat(locks)
    if locks_info is not None and stat.S_ISLNK(locks_info.st_mode):
        found.append(_link(locks, None))
    elif locks_info is not None and not stat.S_ISDIR(locks_info.st_mode):
        problem, action = "not a folder: no lock can be taken", "replace it with a folder"
        found.append(Finding(locks, problem, action, None, lambda: _replace_with_folder(locks)))
    elif locks_info is not None:
        for path in sorted(locks.rglob("*")):
            if path.is_symlink():
                found.append(_link(path, None))
    for dataset in sorted(root.iterdir()):
        if dataset.name != LOCKS_FOLDER and dataset.is_symlink():
            found.append(_link(dataset, None))
    for ref in cache.model_refs():
        folder = root / ref.dataset_id / ref.version_id
        if folder.is_symlink() or (root / ref.dataset_id).is_symlink():
            continue
        found.extend(_model(cache, ref))
    return found


def fix(cache: ModelCache, findings: list[Finding]) -> tuple[list[Finding], list[Finding]]:
    """Apply the fix of each finding that has one; returns (fixed, left). A model being loaded or
    downloaded right now is left alone."""
    fixed: list[Finding] = []
    left: list[Finding] = []
    for finding in findings:
        if finding.repair is None:
            left.append(finding)
            continue
        if finding.ref is None:
            finding.repair()
            fixed.append(finding)
            continue
        in_use = try_exclusive(cache.root, finding.ref)
        lock = try_model_lock(cache.root, finding.ref) if in_use is not None else None
        try:
            if lock is None:
                left.append(finding)
                continue
            finding.repair()
            fixed.append(finding)
        finally:
            if lock is not None:
                lock.release()
            if in_use is not None:
                in_use.release()
    return fixed, left
