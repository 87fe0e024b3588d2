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

from framepipe.errors import InvalidModelIdError

_PART = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9_-])?$")


@dataclass(frozen=True)
class ModelRef:
    """A parsed model id."""

    dataset_id: str
    version_id: str

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
    if len(parts) != 2 or not all(_PART.match(part) for part in parts):
        raise InvalidModelIdError(
            f"invalid model id {model_id!r}: expected 'dataset_id/version_id' (letters, digits, '.', '_', '-'), "
            "or a path to an .onnx file or a model folder"
        )
    return ModelRef(parts[0], parts[1])
