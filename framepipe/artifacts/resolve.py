"""Finding a model's files from what a user passes as ``model_id``.

A model id is one of:

- a path to an ``.onnx`` file (side files beside it are used when present);
- a path to a folder in Roboflow's layout (``weights.onnx`` or ``yolov5s_weights.onnx``,
  ``environment.json``, ``class_names.txt``, ``model_type.json``);
- ``dataset_id/version_id``: a model bundled with framepipe (``framepipe-shapes/1``) or one in the
  cache folder, ``$MODEL_CACHE_DIR/<dataset_id>/<version_id>/``.

Example:
    >>> from framepipe.artifacts import resolve_model
    >>> artifacts = resolve_model("framepipe-shapes/1")
    >>> artifacts.class_names
    ['circle', 'square', 'triangle', 'star']
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framepipe.artifacts.model_id import parse_model_id
from framepipe.errors import ModelArtifactError, ModelNotFoundError

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
WEIGHTS_FILE_NAMES = ("weights.onnx", "yolov5s_weights.onnx")
"""Weight file names Roboflow's cache uses, in the order they are looked for."""


@dataclass(frozen=True)
class ModelArtifacts:
    """The files of one model, read and checked.

    ``environment`` is the parsed ``environment.json`` (``{}`` when there is none) with
    ``PREPROCESSING`` always a dict; ``class_names`` and ``model_type`` are ``None`` when their
    files are absent.
    """

    model_id: str
    weights_path: Path
    folder: Path
    environment: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] | None = None
    model_type: dict[str, Any] | None = None


def default_cache_dir() -> Path:
    """``$MODEL_CACHE_DIR`` when set (Roboflow's variable), else ``$XDG_CACHE_HOME/framepipe/models``
    (``~/.cache/framepipe/models``)."""
    configured = os.environ.get("MODEL_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "framepipe" / "models"


def bundled_model_ids() -> list[str]:
    """Ids of the models shipped inside the package."""
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted(
        f"{dataset.name}/{version.name}"
        for dataset in BUNDLED_DIR.iterdir()
        if dataset.is_dir()
        for version in dataset.iterdir()
        if _weights_in(version) is not None
    )


def _looks_like_path(model_id: str) -> bool:
    return (
        model_id.lower().endswith(".onnx")
        or model_id.startswith(("/", "./", "../", "~", "\\"))
        or model_id.count("/") > 1
        or "\\" in model_id
        or os.path.exists(model_id)
    )


def _weights_in(folder: Path) -> Path | None:
    for name in WEIGHTS_FILE_NAMES:
        if (folder / name).is_file():
            return folder / name
    return None


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise ModelArtifactError(f"{path} is not valid JSON: {error}") from error
    except UnicodeDecodeError as error:
        raise ModelArtifactError(f"{path} is not UTF-8 text: {error}") from error


def read_environment(path: Path) -> dict[str, Any]:
    """Parse ``environment.json``; ``PREPROCESSING`` may be a dict or a JSON string (as Roboflow
    writes it) and comes back as a dict."""
    environment = _read_json(path)
    if not isinstance(environment, dict):
        raise ModelArtifactError(f"{path}: expected a JSON object, got {type(environment).__name__}")
    preprocessing = environment.get("PREPROCESSING", {})
    if isinstance(preprocessing, str):
        try:
            preprocessing = json.loads(preprocessing)
        except json.JSONDecodeError as error:
            raise ModelArtifactError(f"{path}: field PREPROCESSING is a string but not valid JSON: {error}") from error
    if not isinstance(preprocessing, dict):
        raise ModelArtifactError(f"{path}: field PREPROCESSING must be an object, got {type(preprocessing).__name__}")
    for key in ("CLASS_MAP", "COLORS"):
        if key in environment and not isinstance(environment[key], dict):
            raise ModelArtifactError(f"{path}: field {key} must be an object, got {type(environment[key]).__name__}")
    return {**environment, "PREPROCESSING": preprocessing}


def read_model_type(path: Path) -> dict[str, Any]:
    """Parse ``model_type.json``; both ``project_task_type`` and ``model_type`` must be strings."""
    model_type = _read_json(path)
    if not isinstance(model_type, dict):
        raise ModelArtifactError(f"{path}: expected a JSON object, got {type(model_type).__name__}")
    for key in ("project_task_type", "model_type"):
        if not isinstance(model_type.get(key), str):
            raise ModelArtifactError(f"{path}: missing or non-string field {key!r}")
    return model_type


def read_class_names(path: Path) -> list[str]:
    """One class name per line; trailing blank lines are ignored."""
    with open(path, encoding="utf-8") as f:
        names = [line.rstrip("\r\n") for line in f]
    while names and not names[-1].strip():
        names.pop()
    return names


def load_folder(folder: Path, model_id: str, weights: Path | None = None) -> ModelArtifacts:
    """Read a model folder in Roboflow's layout (``weights`` overrides the weight file)."""
    weights = weights or _weights_in(folder)
    if weights is None:
        raise ModelNotFoundError(f"model folder {folder} holds no {' or '.join(WEIGHTS_FILE_NAMES)}")
    environment = read_environment(folder / "environment.json") if (folder / "environment.json").is_file() else {}
    class_names = read_class_names(folder / "class_names.txt") if (folder / "class_names.txt").is_file() else None
    if class_names is None and "CLASS_MAP" in environment:
        class_map = environment["CLASS_MAP"]
        try:
            class_names = [str(class_map[k]) for k in sorted(class_map, key=int)]
        except ValueError as error:
            raise ModelArtifactError(f"{folder / 'environment.json'}: CLASS_MAP keys must be class ids") from error
    model_type = read_model_type(folder / "model_type.json") if (folder / "model_type.json").is_file() else None
    return ModelArtifacts(model_id, weights, folder, environment, class_names, model_type)


def resolve_model(
    model_id: str, api_key: str | None = None, cache_dir: str | os.PathLike[str] | None = None
) -> ModelArtifacts:
    """Find and read the files of ``model_id`` on this machine (no network yet: ``api_key`` is for
    the downloads of a later version).

    Raises ``ModelNotFoundError`` naming the places looked in, ``InvalidModelIdError`` for an id
    that is neither a path nor ``dataset_id/version_id``, ``ModelArtifactError`` for files that
    are present but malformed.
    """
    if isinstance(model_id, str) and _looks_like_path(model_id):
        path = Path(model_id).expanduser()
        if path.is_dir():
            return load_folder(path.resolve(), model_id)
        if path.is_file():
            return load_folder(path.resolve().parent, model_id, weights=path.resolve())
        raise ModelNotFoundError(f"model path {model_id!r} does not exist")
    ref = parse_model_id(model_id)
    bundled = BUNDLED_DIR / ref.dataset_id / ref.version_id
    if _weights_in(bundled) is not None:
        return load_folder(bundled, ref.model_id)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = cache / ref.dataset_id / ref.version_id
    if _weights_in(cached) is not None:
        return load_folder(cached, ref.model_id)
    raise ModelNotFoundError(
        f"model {ref.model_id!r} is not bundled with framepipe (bundled: {', '.join(bundled_model_ids()) or 'none'}) "
        f"and not in the model cache ({cached} has no weights.onnx); check the id, or set MODEL_CACHE_DIR "
        "to the cache that holds it"
    )
