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
    lease: Any = field(default=None, repr=False, compare=False)
    """For a model read from the cache: its in-use lock (``framepipe.artifacts.in_use``), held
    while these artifacts live so that ``cache rm`` / ``cache prune`` cannot delete the files
    before ONNX Runtime has opened them. ``release()`` lets it go early."""

    def release(self) -> None:
        """Let other processes remove the model's files (call once its session is open)."""
        if self.lease is not None:
            self.lease.release()


def weights_in(folder: Path) -> Path | None:
    """The weights file of ``folder`` (``weights.onnx`` first), or ``None``."""
    for name in WEIGHTS_FILE_NAMES:
        if (folder / name).is_file():
            return folder / name
    return None


MAX_JSON_BYTES = 16 << 20
"""Side files (``environment.json``, ``model_type.json``) larger than this are taken for damage."""


def parse_json(data: bytes | str, where: object) -> Any:
    """``data`` parsed as JSON; ``ModelArtifactError`` naming ``where`` for anything that is not
    (bad UTF-8, bad syntax, nesting too deep for the parser, numbers with thousands of digits)."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text)
    except UnicodeDecodeError as error:
        raise ModelArtifactError(f"{where} is not UTF-8 text: {error}") from None
    except RecursionError:
        raise ModelArtifactError(f"{where} is not valid JSON: nested too deeply to read") from None
    except ValueError as error:  # JSONDecodeError, and ints beyond sys.get_int_max_str_digits()
        raise ModelArtifactError(f"{where} is not valid JSON: {error}") from None


def _read_json(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_JSON_BYTES + 1)
    except OSError as error:
        raise ModelArtifactError(f"cannot read {path}: {error.strerror or error}") from None
    if len(data) > MAX_JSON_BYTES:
        raise ModelArtifactError(f"{path} is larger than {MAX_JSON_BYTES >> 20} MiB: not a model side file")
    return parse_json(data, path)


def check_environment(environment: Any, where: object) -> dict[str, Any]:
    """The checks ``read_environment`` makes, on an already parsed object (``ModelArtifactError``)."""
    if not isinstance(environment, dict):
        raise ModelArtifactError(f"{where}: expected a JSON object, got {type(environment).__name__}")
    preprocessing = environment.get("PREPROCESSING", {})
    if isinstance(preprocessing, str):
        try:
            preprocessing = parse_json(preprocessing, "field PREPROCESSING")
        except ModelArtifactError as error:
            raise ModelArtifactError(f"{where}: {error}") from None
    if not isinstance(preprocessing, dict):
        raise ModelArtifactError(f"{where}: field PREPROCESSING must be an object, got {type(preprocessing).__name__}")
    for key in ("CLASS_MAP", "COLORS"):
        if key in environment and not isinstance(environment[key], dict):
            raise ModelArtifactError(f"{where}: field {key} must be an object, got {type(environment[key]).__name__}")
    if isinstance(environment.get("CLASS_MAP"), dict):
        class_names_from_map(environment["CLASS_MAP"], where)
    return {**environment, "PREPROCESSING": preprocessing}


def read_environment(path: Path) -> dict[str, Any]:
    """Parse ``environment.json``; ``PREPROCESSING`` may be a dict or a JSON string (as Roboflow
    writes it) and comes back as a dict."""
    return check_environment(_read_json(path), path)


def read_model_type(path: Path) -> dict[str, Any]:
    """Parse ``model_type.json``; both ``project_task_type`` and ``model_type`` must be strings."""
    model_type = _read_json(path)
    if not isinstance(model_type, dict):
        raise ModelArtifactError(f"{path}: expected a JSON object, got {type(model_type).__name__}")
    for key in ("project_task_type", "model_type"):
        if not isinstance(model_type.get(key), str):
            raise ModelArtifactError(f"{path}: missing or non-string field {key!r}")
    return model_type


MAX_CLASSES = 100_000
"""More class ids than this in ``CLASS_MAP`` is taken for a broken (or hostile) file."""


def control_character(text: str) -> str | None:
    r"""The first control character (C0 but tab, DEL, C1: line breaks, terminal escapes) in ``text``, else ``None``.

    Example:
        >>> control_character("person"), control_character("\x1b[31mred")
        (None, '\x1b')
    """
    return next((c for c in text if (ord(c) < 0x20 and c != "\t") or 0x7F <= ord(c) < 0xA0), None)


def read_class_names(path: Path) -> list[str]:
    r"""One class name per line, exactly as written (blanks kept); a final line break ends the last
    name rather than starting an empty one. Control characters are refused.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "class_names.txt"
        >>> _ = path.write_text("person \ncar\n")
        >>> read_class_names(path)
        ['person ', 'car']
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ModelArtifactError(f"{path} is not UTF-8 text ({error}); download the model again") from None
    if text.endswith("\n"):
        text = text[:-1]
    names = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")] if text else []
    for number, name in enumerate(names, 1):
        bad = control_character(name)
        if bad is not None:
            raise ModelArtifactError(f"{path}: class name on line {number} holds the control character {bad!r}")
    return names


def write_class_names(names: list[str]) -> bytes:
    """The bytes of ``class_names.txt`` for ``names``: one per line, each ended by a line break (so
    that an empty last name survives ``read_class_names``)."""
    return "".join(f"{name}\n" for name in names).encode("utf-8")


def class_names_from_map(class_map: dict[str, Any], where: object) -> list[str]:
    """``CLASS_MAP`` (``{"0": "cat", "3": "dog"}``) as a list indexed by class id; ids with no
    name get ``class_<id>`` so that the others keep their numbers.

    Example:
        >>> class_names_from_map({"0": "cat", "2": "dog"}, "environment.json")
        ['cat', 'class_1', 'dog']
    """
    ids: dict[int, str] = {}
    for key, name in class_map.items():
        if not isinstance(key, str) or not key.isascii() or not key.isdigit() or len(key) > 6:
            raise ModelArtifactError(f"{where}: CLASS_MAP key {key[:20]!r} is not a class id (0 to {MAX_CLASSES - 1})")
        number = int(key)
        if number >= MAX_CLASSES:
            raise ModelArtifactError(f"{where}: CLASS_MAP key {key!r} is not a class id (0 to {MAX_CLASSES - 1})")
        text = str(name)
        bad = control_character(text)
        if bad is not None:
            raise ModelArtifactError(f"{where}: CLASS_MAP name of class {number} holds the control character {bad!r}")
        ids[number] = text
    return [ids.get(i, f"class_{i}") for i in range(max(ids) + 1)] if ids else []


def load_folder(folder: Path, model_id: str, weights: Path | None = None) -> ModelArtifacts:
    """Read a model folder in Roboflow's layout (``weights`` overrides the weight file)."""
    weights = weights or weights_in(folder)
    if weights is None:
        raise ModelNotFoundError(f"model folder {folder} holds no {' or '.join(WEIGHTS_FILE_NAMES)}")
    environment = read_environment(folder / "environment.json") if (folder / "environment.json").is_file() else {}
    class_names = read_class_names(folder / "class_names.txt") if (folder / "class_names.txt").is_file() else None
    if class_names is None and "CLASS_MAP" in environment:
        class_names = class_names_from_map(environment["CLASS_MAP"], str(folder / "environment.json"))
    model_type = read_model_type(folder / "model_type.json") if (folder / "model_type.json").is_file() else None
    return ModelArtifacts(model_id, weights, folder, environment, class_names, model_type)
