"""A registry folder: models laid out like the cache (``<root>/<dataset>/<version>/``), and what
the registry server tells clients about each one (Roboflow's ``/ort`` answer, plus the sha256 and
size of each file). The HTTP side is ``framepipe.server`` (``framepipe registry serve``).

Example:
    >>> from framepipe.artifacts.registry_folder import RegistryFolder, add_model
    >>> add_model("registry", "path/to/model-folder", "my-dataset/1")  # doctest: +SKIP
    >>> RegistryFolder("registry").describe("my-dataset", "1")["weightsFile"]  # doctest: +SKIP
    'weights.onnx'
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framepipe.artifacts.atomic import sha256_file
from framepipe.artifacts.folder import (
    class_names_from_map,
    load_folder,
    parse_json,
    read_class_names,
    read_environment,
    read_model_type,
    weights_in,
    write_class_names,
)
from framepipe.artifacts.layout import (
    CLASS_NAMES_FILE,
    ENVIRONMENT_FILE,
    KEYPOINTS_FILE,
    MODEL_TYPE_FILE,
    WEIGHTS_FILE_NAMES,
    weights_file_for,
)
from framepipe.artifacts.model_id import ModelRef, model_folder, parse_model_id, safe_file_name
from framepipe.errors import FramepipeError, ModelArtifactError, ModelNotFoundError

SERVED_FILES = (*WEIGHTS_FILE_NAMES, ENVIRONMENT_FILE)
"""The files a registry serves; the other side files travel inside the ``/ort`` answer."""


@dataclass
class _Hashes:
    """sha256 of served files, computed once per (size, mtime); bounded by the files in the root."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    known: dict[Path, tuple[int, int, str]] = field(default_factory=dict)

    def sha256(self, path: Path) -> str:
        stat = path.stat()
        with self.lock:
            cached = self.known.get(path)
        if cached and cached[:2] == (stat.st_size, stat.st_mtime_ns):
            return cached[2]
        digest = sha256_file(path)
        with self.lock:
            self.known[path] = (stat.st_size, stat.st_mtime_ns, digest)
        return digest


class RegistryFolder:
    """The models under ``root``, as a registry serves them. Every lookup is confined to ``root``:
    ids are checked, and files (links followed) must resolve inside it."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise ModelNotFoundError(f"registry root {self.root} is not a folder")
        self._hashes = _Hashes()

    def __repr__(self) -> str:
        return f"RegistryFolder({str(self.root)!r})"

    def _inside(self, path: Path) -> bool:
        resolved = path.resolve()
        return resolved == self.root or self.root in resolved.parents

    def model(self, dataset: str, version: str) -> tuple[ModelRef, Path]:
        """The model ``dataset/version`` and its folder; ``ModelNotFoundError`` (with no server path
        in its message) when there is none."""
        try:
            ref = parse_model_id(f"{dataset}/{version}")
            folder = model_folder(self.root, ref)
        except FramepipeError:
            raise ModelNotFoundError("no such model in this registry") from None
        weights = weights_in(folder)
        if weights is None or not (folder / ENVIRONMENT_FILE).is_file():
            raise ModelNotFoundError(f"no model {ref.model_id} in this registry")
        if not self._inside(weights) or not self._inside(folder / ENVIRONMENT_FILE):
            raise ModelNotFoundError(f"no model {ref.model_id} in this registry")
        return ref, folder

    def file(self, dataset: str, version: str, name: str) -> tuple[Path, os.stat_result, str]:
        """A served file: its path, ``stat`` and sha256; ``ModelNotFoundError`` for anything that is
        not a regular file inside the root (a symlink pointing outside it is not served)."""
        _, folder = self.model(dataset, version)
        try:
            safe_file_name(name)
        except FramepipeError:
            raise ModelNotFoundError("no such file") from None
        path = folder / name
        if name not in SERVED_FILES or not path.is_file() or not self._inside(path):
            raise ModelNotFoundError("no such file")
        resolved = path.resolve()
        return resolved, resolved.stat(), self._hashes.sha256(resolved)

    def describe(self, dataset: str, version: str) -> tuple[ModelRef, dict[str, Any]]:
        """The ``ort`` object for a model, without its two URLs (``model``, ``environment``), which
        the server adds. ``ModelArtifactError`` when the registry's copy is broken."""
        ref, folder = self.model(dataset, version)
        weights = weights_in(folder)
        assert weights is not None
        try:
            environment = read_environment(folder / ENVIRONMENT_FILE)
            class_names = read_class_names(folder / CLASS_NAMES_FILE) if (folder / CLASS_NAMES_FILE).is_file() else []
            if not class_names and isinstance(environment.get("CLASS_MAP"), dict):
                class_names = class_names_from_map(environment["CLASS_MAP"], ENVIRONMENT_FILE)
            model_type = read_model_type(folder / MODEL_TYPE_FILE) if (folder / MODEL_TYPE_FILE).is_file() else {}
            served = [weights, folder / ENVIRONMENT_FILE]
            ort: dict[str, Any] = {
                "name": ref.dataset_id,
                "type": model_type.get("project_task_type", "object-detection"),
                "classes": class_names,
                "colors": environment.get("COLORS", {}),
                "weightsFile": weights.name,
                "sha256": {p.name: self._hashes.sha256(p.resolve()) for p in served},
                "size": {p.name: p.stat().st_size for p in served},
            }
            if model_type.get("model_type"):
                ort["modelType"] = model_type["model_type"]
            if (folder / KEYPOINTS_FILE).is_file():
                ort["keypoints_metadata"] = parse_json((folder / KEYPOINTS_FILE).read_bytes(), KEYPOINTS_FILE)
        except OSError as error:
            raise ModelArtifactError(f"cannot read the files of {ref.model_id}: {error.strerror or error}") from None
        return ref, ort


def _copy_into(source: Path, destination: Path) -> None:
    temporary = destination.with_name(f".{destination.name}.tmp")
    shutil.copyfile(source, temporary)
    os.replace(temporary, destination)


def add_model(
    root: str | os.PathLike[str],
    source: str | os.PathLike[str],
    model_id: str,
    *,
    task_type: str | None = None,
    model_type: str | None = None,
    overwrite: bool = False,
    class_names_of: Callable[[Path], list[str]] | None = None,
) -> Path:
    """Put a model (a folder in Roboflow's layout, or an ``.onnx`` file with or without side files)
    into a registry folder as ``root/<dataset>/<version>/``; returns that folder.

    Missing side files are made: ``environment.json`` (no preprocessing), ``class_names.txt`` (from
    ``CLASS_MAP``, or ``class_names_of(weights)``: the CLI reads the ONNX file's ``names`` metadata),
    ``model_type.json`` (``task_type``,
    default ``object-detection``; ``model_type``, default ``yolov8n`` or ``yolov5v2s`` for
    ``yolov5s_weights.onnx``).

    Example:
        >>> add_model("registry", "runs/best.onnx", "doorbell/2", model_type="yolov8s")  # doctest: +SKIP
        PosixPath('registry/doorbell/2')
    """
    ref = parse_model_id(model_id)
    root_path = Path(root).expanduser()
    root_path.mkdir(parents=True, exist_ok=True)
    destination = model_folder(root_path, ref)
    source_path = Path(source).expanduser()
    if source_path.is_dir():
        weights = weights_in(source_path)
        if weights is None:
            raise ModelNotFoundError(f"{source_path} holds no {' or '.join(WEIGHTS_FILE_NAMES)}")
        side = source_path
    elif source_path.is_file() and source_path.suffix.lower() == ".onnx":
        weights, side = source_path, source_path.parent
    else:
        raise ModelNotFoundError(f"{source_path} is neither a model folder nor an .onnx file")
    if destination.exists() and any(destination.iterdir()) and not overwrite:
        raise ModelArtifactError(f"{destination} already holds a model; pass overwrite=True (--force) to replace it")
    load_folder(side, model_id, weights=weights)  # refuses malformed side files before anything is copied
    destination.mkdir(parents=True, exist_ok=True)
    if source_path.is_dir() or weights.name in WEIGHTS_FILE_NAMES[:2]:
        weights_name = weights.name  # a Roboflow folder's own name
    else:  # a training run's best.onnx, or any other name: the name the model type reads
        weights_name = weights_file_for(model_type) if model_type else WEIGHTS_FILE_NAMES[0]
    for other in WEIGHTS_FILE_NAMES:
        if other != weights_name:
            (destination / other).unlink(missing_ok=True)
    _copy_into(weights, destination / weights_name)
    for name in (ENVIRONMENT_FILE, CLASS_NAMES_FILE, KEYPOINTS_FILE):
        if (side / name).is_file():
            _copy_into(side / name, destination / name)
    if not (destination / ENVIRONMENT_FILE).is_file():
        (destination / ENVIRONMENT_FILE).write_text(json.dumps({"PREPROCESSING": "{}"}, indent=4), encoding="utf-8")
    if not (destination / CLASS_NAMES_FILE).is_file():
        names = load_folder(destination, model_id).class_names or (
            class_names_of(destination / weights_name) if class_names_of is not None else []
        )
        (destination / CLASS_NAMES_FILE).write_bytes(write_class_names(names))
    existing = read_model_type(side / MODEL_TYPE_FILE) if (side / MODEL_TYPE_FILE).is_file() else {}
    default_type = "yolov5v2s" if weights_name == "yolov5s_weights.onnx" else "yolov8n"
    record = {
        "project_task_type": task_type or existing.get("project_task_type", "object-detection"),
        "model_type": model_type or existing.get("model_type", default_type),
        "model_id": ref.model_id,
    }
    (destination / MODEL_TYPE_FILE).write_text(json.dumps(record, indent=4), encoding="utf-8")
    return destination
