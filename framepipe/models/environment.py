"""Reading ``environment.json``'s ``PREPROCESSING`` into a checked configuration.

Keys read (Roboflow's): ``resize {enabled, width, height, format}``, ``static-crop {enabled,
x_min, y_min, x_max, y_max}`` (percent of the frame), ``contrast {enabled, type}``,
``grayscale {enabled}``. ``auto-orient`` only concerns EXIF photos, never video frames, and
other keys (``filter-tags`` and the like) concern training only: both are ignored. A value that
cannot be used raises ``ModelArtifactError`` naming the field.

Example:
    >>> from framepipe.models.environment import parse_preprocessing
    >>> config = parse_preprocessing({"resize": {"enabled": True, "format": "Stretch to", "width": "560",
    ...                                          "height": "560"}})
    >>> config.resize_format, config.size
    ('Stretch to', (560, 560))
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from framepipe.errors import ModelArtifactError

logger = logging.getLogger("framepipe.models")

STRETCH = "Stretch to"
ULTRALYTICS_LETTERBOX = "Ultralytics letterbox"
"""framepipe's name for a bare Ultralytics export's resize (no ``environment.json``): its
``LetterBox`` (sizes rounded, grey 114 edges split as Ultralytics splits them)."""
ULTRALYTICS_CLASSIFY = "Ultralytics classify"
"""framepipe's name for a bare Ultralytics classifier's resize: the shortest side to the input
size with PIL's bilinear filter, then a centre crop (Ultralytics' ``classify_transforms``)."""
PAD_COLORS: dict[str, tuple[int, int, int]] = {
    "Fit (black edges) in": (0, 0, 0),
    "Fit (white edges) in": (255, 255, 255),
    "Fit (grey edges) in": (114, 114, 114),
    ULTRALYTICS_LETTERBOX: (114, 114, 114),
}
"""Letterbox formats and their padding colours (BGR)."""

BLACK_FALLBACK_FORMATS = ("Fit (reflect edges) in", "Fit within", "Fill (with center crop) in")
"""Formats Roboflow's own inference runs as black-edge letterbox; framepipe does the same, with a warning."""

CONTRAST_TYPES = ("Contrast Stretching", "Histogram Equalization", "Adaptive Equalization")


@dataclass(frozen=True)
class StaticCrop:
    """A crop in percent of the frame (0-100), applied before anything else."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float


@dataclass(frozen=True)
class PreprocessingConfig:
    """What to do to a frame before the network sees it. ``size`` is ``(width, height)`` or
    ``None`` when ``environment.json`` gives none (the model's own input size is used)."""

    resize_format: str = STRETCH
    size: tuple[int, int] | None = None
    static_crop: StaticCrop | None = None
    contrast: str | None = None
    grayscale: bool = False

    @property
    def pad_color(self) -> tuple[int, int, int] | None:
        """Padding colour for letterbox formats, ``None`` for ``Stretch to``."""
        return PAD_COLORS.get(self.resize_format)


def _disabled(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes"}


def _enabled(section: dict[str, Any], path: str) -> bool:
    value = section.get("enabled", True)
    if not isinstance(value, bool):
        raise ModelArtifactError(f"PREPROCESSING.{path}.enabled must be true or false, got {value!r}")
    return value


def _section(preprocessing: dict[str, Any], key: str) -> dict[str, Any] | None:
    section = preprocessing.get(key)
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ModelArtifactError(f"PREPROCESSING.{key} must be an object, got {type(section).__name__}")
    return section if _enabled(section, key) else None


def _number(section: dict[str, Any], path: str, key: str, low: float, high: float) -> float:
    if key not in section:
        raise ModelArtifactError(f"PREPROCESSING.{path}.{key} is missing")
    try:
        value = float(section[key])
    except (TypeError, ValueError) as error:
        raise ModelArtifactError(f"PREPROCESSING.{path}.{key} must be a number, got {section[key]!r}") from error
    if not low <= value <= high:
        raise ModelArtifactError(f"PREPROCESSING.{path}.{key} must be between {low:g} and {high:g}, got {value:g}")
    return value


def _size(resize: dict[str, Any]) -> tuple[int, int] | None:
    if "width" not in resize and "height" not in resize:
        return None
    values = []
    for key in ("width", "height"):
        value = _number(resize, "resize", key, 1, 100_000)
        if value != int(value):
            raise ModelArtifactError(f"PREPROCESSING.resize.{key} must be a whole number, got {resize[key]!r}")
        values.append(int(value))
    return values[0], values[1]


def parse_preprocessing(preprocessing: dict[str, Any]) -> PreprocessingConfig:
    """Check and read a ``PREPROCESSING`` object (already parsed from its JSON string).

    Roboflow's switches ``DISABLE_PREPROC_STATIC_CROP``, ``DISABLE_PREPROC_CONTRAST`` and
    ``DISABLE_PREPROC_GRAYSCALE`` are honoured.
    """
    if not isinstance(preprocessing, dict):
        raise ModelArtifactError(f"PREPROCESSING must be an object, got {type(preprocessing).__name__}")
    resize_format, size = STRETCH, None
    resize = _section(preprocessing, "resize")
    if resize is not None:
        raw_format = resize.get("format", STRETCH)
        if not isinstance(raw_format, str):
            raise ModelArtifactError(f"PREPROCESSING.resize.format must be a string, got {raw_format!r}")
        if raw_format in BLACK_FALLBACK_FORMATS:
            logger.warning("resize format %r runs as 'Fit (black edges) in', as in Roboflow Inference", raw_format)
            raw_format = "Fit (black edges) in"
        if raw_format != STRETCH and raw_format not in PAD_COLORS:
            known = [STRETCH, *PAD_COLORS, *BLACK_FALLBACK_FORMATS]
            raise ModelArtifactError(f"PREPROCESSING.resize.format {raw_format!r} is unknown; known formats: {known}")
        resize_format, size = raw_format, _size(resize)
    crop = None
    crop_section = _section(preprocessing, "static-crop")
    if crop_section is not None and not _disabled("DISABLE_PREPROC_STATIC_CROP"):
        crop = StaticCrop(
            *(_number(crop_section, "static-crop", k, 0, 100) for k in ("x_min", "y_min", "x_max", "y_max"))
        )
        if crop.x_min >= crop.x_max or crop.y_min >= crop.y_max:
            raise ModelArtifactError(f"PREPROCESSING.static-crop is empty: {crop}")
    contrast = None
    contrast_section = _section(preprocessing, "contrast")
    if contrast_section is not None and not _disabled("DISABLE_PREPROC_CONTRAST"):
        contrast = contrast_section.get("type")
        if contrast not in CONTRAST_TYPES:
            raise ModelArtifactError(
                f"PREPROCESSING.contrast.type {contrast!r} is unknown; known: {list(CONTRAST_TYPES)}"
            )
    grayscale = _section(preprocessing, "grayscale") is not None and not _disabled("DISABLE_PREPROC_GRAYSCALE")
    return PreprocessingConfig(resize_format, size, crop, contrast, grayscale)
