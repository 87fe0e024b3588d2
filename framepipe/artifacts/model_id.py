"""Model ids: Roboflow's ``dataset_id/version_id`` form, and the checks that keep them inside the
cache folder.

Example:
    >>> from framepipe.artifacts.model_id import parse_model_id
    >>> parse_model_id("framepipe-shapes/1")
    ModelRef(dataset_id='framepipe-shapes', version_id='1')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from framepipe.errors import InvalidModelIdError, UnsafePathError

_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9_-])?")


@dataclass(frozen=True)
class ModelRef:
    """A parsed model id; a hand-built one is checked as ``parse_model_id`` checks a string.

    Example:
        >>> ModelRef("a", "../b")
        Traceback (most recent call last):
        ...
        framepipe.errors.UnsafePathError: refused model id 'a/../b': ...
    """

    dataset_id: str
    version_id: str

    def __post_init__(self) -> None:
        if not isinstance(self.dataset_id, str) or not isinstance(self.version_id, str):
            raise InvalidModelIdError("a model id's dataset_id and version_id are strings")
        joined = f"{self.dataset_id}/{self.version_id}"
        _check_parts(joined, joined.split("/"))

    @property
    def model_id(self) -> str:
        return f"{self.dataset_id}/{self.version_id}"

    def __str__(self) -> str:
        return self.model_id


def parse_model_id(model_id: str) -> ModelRef:
    """Split ``dataset_id/version_id``, refusing anything that is not a plain pair of names.

    Each part is letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit and not
    ending with a dot, so that no id can name ``..``, an absolute path or a hidden file.
    """
    if not isinstance(model_id, str):
        raise InvalidModelIdError(f"a model id is a string like 'my-dataset/3', got {type(model_id).__name__}")
    parts = model_id.split("/")
    _check_parts(model_id, parts)
    return ModelRef(parts[0], parts[1])


def _check_parts(model_id: str, parts: list[str]) -> None:
    if any(part in ("", ".", "..") for part in parts) or model_id.startswith(("/", "\\")) or "\\" in model_id:
        raise UnsafePathError(
            f"refused model id {model_id!r}: it names a path outside the model cache ('..', an absolute path or a "
            "stray separator); a model id is 'dataset_id/version_id'"
        )
    if len(parts) != 2 or not all(_PART.fullmatch(part) for part in parts):
        raise InvalidModelIdError(
            f"invalid model id {model_id!r}: expected 'dataset_id/version_id' (letters, digits, '.', '_', '-'), "
            "or a path to an .onnx file or a model folder (written as a path: ./folder, /abs/folder, model.onnx)"
        )


_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")


def safe_file_name(name: object, what: str = "file name") -> str:
    """``name`` when it is a plain file name that stays inside a folder, else ``UnsafePathError``.

    Refuses ``..``, absolute paths, separators (``/`` and ``\\``), hidden names and control
    characters: such names come from registries and must never pick where a file is written.

    Example:
        >>> safe_file_name("weights.onnx")
        'weights.onnx'
        >>> safe_file_name("../../etc/passwd")
        Traceback (most recent call last):
        ...
        framepipe.errors.UnsafePathError: refused file name '../../etc/passwd' (file name): ...
    """
    if not isinstance(name, str) or not _FILE_NAME.fullmatch(name) or name.endswith("."):
        raise UnsafePathError(
            f"refused file name {name!r} ({what}): only plain names of letters, digits, '.', '_' and '-' are "
            "allowed, never a path, '..' or a hidden name"
        )
    return name


def model_folder(root: Path, ref: ModelRef) -> Path:
    """``root/<dataset_id>/<version_id>``, checked to lie inside ``root`` (also through links)."""
    folder = root / ref.dataset_id / ref.version_id
    resolved_root = root.resolve()
    resolved = folder.resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise UnsafePathError(f"model folder of {ref.model_id!r} resolves to {resolved}, outside {resolved_root}")
    return folder
