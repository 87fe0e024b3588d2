"""Reading a model folder in Roboflow's layout into ``ModelArtifacts``.

A folder holds ``weights.onnx`` (or YOLOv5's ``yolov5s_weights.onnx``), ``environment.json``,
``class_names.txt`` and ``model_type.json``; only the weights are required.

Example:
    >>> from framepipe.artifacts.folder import load_folder
    >>> from framepipe.artifacts.resolve import BUNDLED_DIR
    >>> load_folder(BUNDLED_DIR / "framepipe-shapes" / "1", "framepipe-shapes/1").class_names
    ['circle', 'square', 'triangle', 'star']
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framepipe.artifacts.layout import WEIGHTS_FILE_NAMES
from framepipe.errors import ModelArtifactError, ModelNotFoundError


@dataclass(frozen=True)
class ModelArtifacts:
    """The files of one model, read and checked.

    ``environment`` is the parsed ``environment.json`` (``{}`` when there is none) with
    ``PREPROCESSING`` always a dict; ``class_names`` and ``model_type`` are ``None`` when their
    files are absent.

    ``is_stub`` is true for version ``0`` of any dataset (Roboflow's stub models): there are no
    files (``weights_path`` and ``folder`` are empty paths) and the model answers every image with
    no predictions; ``framepipe.models.StubModel`` is that model.
    """

    model_id: str
    weights_path: Path
    folder: Path
    environment: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] | None = None
    model_type: dict[str, Any] | None = None
    is_stub: bool = False


def weights_in(folder: Path) -> Path | None:
    """The weights file of ``folder`` (``weights.onnx`` first), or ``None``."""
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
    weights = weights or weights_in(folder)
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
