"""Model aliases: short names such as ``yolov8n-640`` that stand for a ``dataset_id/version_id``.

The built-in table holds Roboflow Inference's registered aliases for its public COCO models. Add
your own with ``register_alias`` or with a JSON file named by ``FRAMEPIPE_MODEL_ALIASES``
(``{"alias": "dataset/version", ...}``; an alias may also point to a model folder or ``.onnx``).

Example:
    >>> from framepipe.artifacts.aliases import register_alias, resolve_alias
    >>> resolve_alias("yolov8n-640")
    'coco/3'
    >>> register_alias("doorbell", "my-doorbell/4")
    >>> resolve_alias("doorbell")
    'my-doorbell/4'
    >>> resolve_alias("some-dataset/2")
    'some-dataset/2'
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from framepipe.errors import InvalidModelIdError

_YOLOV11 = {
    "yolov11n-seg-640": "coco-dataset-vdnr1/19",
    "yolov11s-seg-640": "coco-dataset-vdnr1/20",
    "yolov11m-seg-640": "coco-dataset-vdnr1/21",
    "yolov11l-seg-640": "coco-dataset-vdnr1/22",
    "yolov11x-seg-640": "coco-dataset-vdnr1/23",
    "yolov11n-640": "coco/25",
    "yolov11s-640": "coco/26",
    "yolov11m-640": "coco/27",
    "yolov11l-640": "coco/28",
    "yolov11x-640": "coco/29",
    "yolov11n-1280": "coco/30",
    "yolov11s-1280": "coco/31",
    "yolov11m-1280": "coco/32",
    "yolov11l-1280": "coco/33",
    "yolov11x-1280": "coco/34",
}

ROBOFLOW_ALIASES: dict[str, str] = {
    "yolov8n-640": "coco/3",
    "yolov8n-1280": "coco/9",
    "yolov8s-640": "coco/6",
    "yolov8s-1280": "coco/10",
    "yolov8m-640": "coco/8",
    "yolov8m-1280": "coco/11",
    "yolov8l-640": "coco/7",
    "yolov8l-1280": "coco/12",
    "yolov8x-640": "coco/5",
    "yolov8x-1280": "coco/13",
    "yolo-nas-s-640": "coco/14",
    "yolo-nas-m-640": "coco/15",
    "yolo-nas-l-640": "coco/16",
    "yolov8n-seg-640": "coco-dataset-vdnr1/2",
    "yolov8n-seg-1280": "coco-dataset-vdnr1/7",
    "yolov8s-seg-640": "coco-dataset-vdnr1/4",
    "yolov8s-seg-1280": "coco-dataset-vdnr1/8",
    "yolov8m-seg-640": "coco-dataset-vdnr1/5",
    "yolov8m-seg-1280": "coco-dataset-vdnr1/9",
    "yolov8l-seg-640": "coco-dataset-vdnr1/6",
    "yolov8l-seg-1280": "coco-dataset-vdnr1/10",
    "yolov8x-seg-640": "coco-dataset-vdnr1/3",
    "yolov8x-seg-1280": "coco-dataset-vdnr1/11",
    "yolov8n-pose-640": "coco-pose-detection/1",
    "yolov8s-pose-640": "coco-pose-detection/2",
    "yolov8m-pose-640": "coco-pose-detection/3",
    "yolov8l-pose-640": "coco-pose-detection/4",
    "yolov8x-pose-640": "coco-pose-detection/5",
    "yolov8x-pose-1280": "coco-pose-detection/6",
    "yolov10n-640": "coco/19",
    "yolov10s-640": "coco/20",
    "yolov10m-640": "coco/21",
    "yolov10b-640": "coco/22",
    "yolov10l-640": "coco/23",
    "yolov10x-640": "coco/24",
    **_YOLOV11,
    **{name.replace("yolov11", "yolo11"): target for name, target in _YOLOV11.items()},
    "rfdetr-base": "coco/36",
    "rfdetr-nano": "coco/38",
    "rfdetr-small": "coco/39",
    "rfdetr-medium": "coco/40",
    "rfdetr-large": "coco/50",
    "rfdetr-xlarge": "coco/47",
    "rfdetr-2xlarge": "coco/48",
}
"""Roboflow Inference's aliases for public pre-trained models (they need no API key there)."""

ALIASES_ENV = "FRAMEPIPE_MODEL_ALIASES"

_user_aliases: dict[str, str] = {}
_lock = threading.Lock()
_file_cache: tuple[str, float, dict[str, str]] | None = None


def register_alias(alias: str, model_id: str) -> None:
    """Make ``alias`` stand for ``model_id`` in this process (overrides the built-in table)."""
    if not alias or "/" in alias or "\\" in alias:
        raise InvalidModelIdError(f"an alias is a single name without '/', got {alias!r}")
    if not isinstance(model_id, str) or not model_id:
        raise InvalidModelIdError(f"alias {alias!r} must point to a model id, got {model_id!r}")
    with _lock:
        _user_aliases[alias] = model_id


def _aliases_from_file() -> dict[str, str]:
    global _file_cache
    path = os.environ.get(ALIASES_ENV)
    if not path:
        return {}
    try:
        mtime = Path(path).stat().st_mtime
    except OSError as error:
        raise InvalidModelIdError(f"{ALIASES_ENV}={path}: cannot read the alias file ({error.strerror})") from None
    if _file_cache is not None and _file_cache[:2] == (path, mtime):
        return _file_cache[2]
    try:
        table = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidModelIdError(f"{ALIASES_ENV}={path} is not a JSON object of aliases: {error}") from None
    if not isinstance(table, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
        raise InvalidModelIdError(f'{ALIASES_ENV}={path} must hold a JSON object {{"alias": "dataset/version"}}')
    _file_cache = (path, mtime, table)
    return table


def aliases() -> dict[str, str]:
    """The whole table in force: built-in, then the ``FRAMEPIPE_MODEL_ALIASES`` file, then
    ``register_alias`` calls (later ones win)."""
    with _lock:
        return {**ROBOFLOW_ALIASES, **_aliases_from_file(), **_user_aliases}


def resolve_alias(model_id: str) -> str:
    """The model id ``model_id`` stands for, or ``model_id`` itself when it is no alias."""
    if not isinstance(model_id, str) or "/" in model_id:
        return model_id
    return aliases().get(model_id, model_id)


def is_roboflow_alias(model_id: str) -> bool:
    """Whether ``model_id`` is one of Roboflow's built-in aliases (public models: no key needed)."""
    return model_id in ROBOFLOW_ALIASES
