"""Post-processing parameters of a request, with Roboflow's defaults and environment variables.

Every task has its class: ``InferenceParameters`` (detection and classification: ``confidence``),
``SegmentationParameters`` (``mask_decode_mode``, ``tradeoff_factor``, ``response_mask_format``,
``keep_masks``) and ``KeypointParameters`` (``keypoint_confidence``). A name the task does not
know raises ``TypeError``; a value it cannot use raises ``InvalidParameterError``.

Example:
    >>> from framepipe.models.params import InferenceParameters, SegmentationParameters
    >>> InferenceParameters.from_kwargs(confidence=0.5, iou_threshold=None).iou_threshold
    0.3
    >>> SegmentationParameters.from_kwargs(mask_decode_mode="fast").mask_decode_mode
    'fast'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from framepipe._internal.env import env_flag, env_float
from framepipe.errors import FramepipeError


class InvalidParameterError(FramepipeError, ValueError):
    """An inference parameter has a value its task cannot use."""


@dataclass(frozen=True)
class InferenceParameters:
    """Post-processing settings, with Roboflow's pipeline defaults. ``class_filter`` keeps only the
    named classes."""

    confidence: float = 0.4
    iou_threshold: float = 0.3
    class_agnostic_nms: bool = False
    max_candidates: int = 3000
    max_detections: int = 300
    class_filter: tuple[str, ...] | None = None

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> InferenceParameters:
        """Build from keyword arguments, ``None`` meaning "the default"; unknown names raise."""
        known = set(cls.__dataclass_fields__)
        unknown = set(kwargs) - known
        if unknown:
            raise TypeError(f"unknown inference parameters {sorted(unknown)}; known: {sorted(known)}")
        values = {k: v for k, v in kwargs.items() if v is not None}
        if "class_filter" in values:
            values["class_filter"] = tuple(values["class_filter"])
        made = cls(**values)
        made.check()
        return made

    def check(self) -> None:
        """Raise ``InvalidParameterError`` for a value this task cannot use."""
        if not 0 <= self.confidence <= 1:
            raise InvalidParameterError(f"confidence must be between 0 and 1, got {self.confidence!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> InferenceParameters:
        """Roboflow's environment variables (``CONFIDENCE``, ``IOU_THRESHOLD``,
        ``CLASS_AGNOSTIC_NMS``, ``MAX_CANDIDATES``, ``MAX_DETECTIONS``) as defaults, read now;
        ``overrides`` that are not ``None`` win."""
        base = cls()
        defaults: dict[str, Any] = {
            "confidence": env_float("CONFIDENCE", base.confidence, env),
            "iou_threshold": env_float("IOU_THRESHOLD", base.iou_threshold, env),
            "class_agnostic_nms": env_flag("CLASS_AGNOSTIC_NMS", base.class_agnostic_nms, env),
            "max_candidates": int(env_float("MAX_CANDIDATES", base.max_candidates, env)),
            "max_detections": int(env_float("MAX_DETECTIONS", base.max_detections, env)),
        }
        defaults.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_kwargs(**defaults)


MASK_DECODE_MODES = ("accurate", "fast", "tradeoff")
"""Roboflow's ``mask_decode_mode``s: masks at the frame's size, at the prototypes' size, or between."""
RESPONSE_MASK_FORMATS = ("polygon", "rle")


@dataclass(frozen=True)
class SegmentationParameters(InferenceParameters):
    """Instance segmentation: ``mask_decode_mode`` (``accurate``, ``fast``, ``tradeoff``),
    ``tradeoff_factor`` (0: prototype size .. 1: frame size, for ``tradeoff``),
    ``response_mask_format`` of the JSON (``polygon`` or COCO ``rle``) and ``keep_masks``: keep
    each instance's full-frame boolean mask in the typed prediction (large: off by default)."""

    mask_decode_mode: str = "accurate"
    tradeoff_factor: float = 0.0
    response_mask_format: str = "polygon"
    keep_masks: bool = False

    def check(self) -> None:
        super().check()
        if self.mask_decode_mode not in MASK_DECODE_MODES:
            raise InvalidParameterError(
                f"unknown mask_decode_mode {self.mask_decode_mode!r}; known: {', '.join(MASK_DECODE_MODES)}"
            )
        if not 0 <= self.tradeoff_factor <= 1:
            raise InvalidParameterError(f"tradeoff_factor must be between 0 and 1, got {self.tradeoff_factor!r}")
        if self.response_mask_format not in RESPONSE_MASK_FORMATS:
            raise InvalidParameterError(
                f"unknown response_mask_format {self.response_mask_format!r}; known: {', '.join(RESPONSE_MASK_FORMATS)}"
            )


@dataclass(frozen=True)
class KeypointParameters(InferenceParameters):
    """Keypoint detection: keypoints scored below ``keypoint_confidence`` are kept but marked
    missing (``x = y = confidence = 0``, supervision's marker), so every object keeps all of them."""

    keypoint_confidence: float = 0.0

    def check(self) -> None:
        super().check()
        if not 0 <= self.keypoint_confidence <= 1:
            raise InvalidParameterError(
                f"keypoint_confidence must be between 0 and 1, got {self.keypoint_confidence!r}"
            )


PARAMETERS_BY_TASK: dict[str, type[InferenceParameters]] = {
    "object-detection": InferenceParameters,
    "classification": InferenceParameters,
    "instance-segmentation": SegmentationParameters,
    "keypoint-detection": KeypointParameters,
}
"""The parameters class of each task framepipe runs (Roboflow's ``project_task_type``)."""
