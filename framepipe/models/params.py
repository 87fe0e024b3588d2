"""Post-processing parameters of a request, with Roboflow's defaults and environment variables.

Example:
    >>> from framepipe.models.params import InferenceParameters
    >>> InferenceParameters.from_kwargs(confidence=0.5, iou_threshold=None).iou_threshold
    0.3
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from framepipe._internal.env import env_flag, env_float


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
        return cls(**values)

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
