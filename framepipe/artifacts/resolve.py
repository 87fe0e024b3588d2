"""Finding a model's files from what a user passes as ``model_id``.

A model id is one of:

- a path to an ``.onnx`` file (side files beside it are used when present);
- a path to a folder in Roboflow's layout (``weights.onnx`` or ``yolov5s_weights.onnx``,
  ``environment.json``, ``class_names.txt``, ``model_type.json``);
- an alias such as ``yolov8n-640`` (see ``framepipe.artifacts.aliases``);
- ``dataset_id/version_id``: version ``0`` is a stub model (no files, empty predictions); else a
  model bundled with framepipe (``framepipe-shapes/1``), or one in the cache folder
  (``$MODEL_CACHE_DIR/<dataset_id>/<version_id>/``), downloaded into it first when missing
  (unless offline).

Example:
    >>> from framepipe.artifacts import resolve_model
    >>> artifacts = resolve_model("framepipe-shapes/1")
    >>> artifacts.class_names
    ['circle', 'square', 'triangle', 'star']
    >>> resolve_model("anything/0").is_stub
    True
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from framepipe.artifacts.aliases import resolve_alias
from framepipe.artifacts.cache import ModelCache, default_cache_dir
from framepipe.artifacts.fetch import fetch_model
from framepipe.artifacts.folder import (
    ModelArtifacts,
    load_folder,
    read_class_names,
    read_environment,
    read_model_type,
    weights_in,
)
from framepipe.artifacts.in_use import hold_shared
from framepipe.artifacts.layout import WEIGHTS_FILE_NAMES
from framepipe.artifacts.model_id import ModelRef, parse_model_id
from framepipe.artifacts.stub import STUB_VERSION_ID, known_task, stub_artifacts
from framepipe.errors import ModelCacheError, ModelCacheLockTimeout, ModelNotFoundError

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"

__all__ = [
    "BUNDLED_DIR",
    "WEIGHTS_FILE_NAMES",
    "ModelArtifacts",
    "bundled_folder",
    "bundled_model_ids",
    "default_cache_dir",
    "load_folder",
    "read_class_names",
    "read_environment",
    "read_model_type",
    "resolve_model",
]


def bundled_model_ids() -> list[str]:
    """Ids of the models shipped inside the package."""
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted(
        f"{dataset.name}/{version.name}"
        for dataset in BUNDLED_DIR.iterdir()
        if dataset.is_dir()
        for version in dataset.iterdir()
        if weights_in(version) is not None
    )


def bundled_folder(ref: ModelRef) -> Path | None:
    """The folder of a bundled model, or ``None`` when ``ref`` is not bundled."""
    folder = BUNDLED_DIR / ref.dataset_id / ref.version_id
    return folder if weights_in(folder) is not None else None


def _looks_like_path(model_id: str) -> bool:
    """Paths must look like paths: ``dataset/version`` always means a registry model, even when a
    folder of that name exists in the working directory (write ``./coco/3`` to load that folder).
    A bare name (no ``/``) that is no alias may name an existing folder or file."""
    if model_id.lower().endswith(".onnx") or model_id.startswith(("/", "./", "../", "~", "\\", ".\\")):
        return True
    if model_id.count("/") > 1 or "\\" in model_id or (os.altsep is not None and os.sep in model_id):
        return True
    return "/" not in model_id and resolve_alias(model_id) == model_id and os.path.exists(model_id)


def resolve_model(
    model_id: str, api_key: str | None = None, cache_dir: str | os.PathLike[str] | None = None
) -> ModelArtifacts:
    """Find (and if needed download) the files of ``model_id`` and read them.

    Paths, bundled ids, version ``0`` stubs and cached ids need no network. A ``dataset/version``
    that is not cached is downloaded with ``api_key`` (else ``ROBOFLOW_API_KEY`` / ``API_KEY``)
    from ``API_BASE_URL`` (see ``fetch_model``), except in offline mode (``FRAMEPIPE_OFFLINE=1`` or
    ``OFFLINE_MODE=True``), where a missing model raises ``ModelOfflineError`` naming the folder.

    Raises ``ModelNotFoundError`` naming the places looked in, ``InvalidModelIdError`` for an id
    that is neither a path nor ``dataset_id/version_id`` (``UnsafePathError`` for one that would
    leave the cache), ``ModelArtifactError`` for files that are present but malformed.
    """
    if isinstance(model_id, str) and _looks_like_path(model_id):
        path = Path(model_id).expanduser()
        if path.is_dir():
            return load_folder(path.resolve(), model_id)
        if path.is_file():
            return load_folder(path.resolve().parent, model_id, weights=path.resolve())
        raise ModelNotFoundError(f"model path {model_id!r} does not exist")
    target = resolve_alias(model_id)
    if target != model_id and _looks_like_path(target):
        return resolve_model(target, api_key=api_key, cache_dir=cache_dir)
    ref = parse_model_id(target)
    if ref.version_id == STUB_VERSION_ID:  # the dataset's task, from a version already here
        cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        return stub_artifacts(ref, known_task([BUNDLED_DIR / ref.dataset_id, cache_root / ref.dataset_id]))
    bundled = bundled_folder(ref)
    if bundled is not None:
        return load_folder(bundled, ref.model_id)
    cache = ModelCache(cache_dir)
    try:  # held from before the folder is read until the artifacts are dropped (or released)
        lease = hold_shared(cache.root, ref, cache.lock_timeout_s)
    except (ModelCacheError, ModelCacheLockTimeout):
        raise
    except OSError:
        lease = None  # a cache that cannot be written cannot be pruned either
    try:
        result = fetch_model(ref if target == model_id else model_id, api_key=api_key, cache_dir=cache_dir)
        return replace(load_folder(result.folder, ref.model_id), lease=lease)
    except BaseException:
        if lease is not None:
            lease.release()
        raise
