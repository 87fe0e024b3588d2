"""Post-processing parameters of a request, with Roboflow's defaults and environment variables.

Example:
    >>> from framepipe.models.params import InferenceParameters
    >>> InferenceParameters.from_kwargs(confidence=0.5, iou_threshold=None).iou_threshold
    0.3
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


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
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> InferenceParameters:
        """Roboflow's environment variables (``CONFIDENCE``, ``IOU_THRESHOLD``,
        ``CLASS_AGNOSTIC_NMS``, ``MAX_CANDIDATES``, ``MAX_DETECTIONS``) as defaults, read now;
        ``overrides`` that are not ``None`` win."""
        source = os.environ if env is None else env
        defaults: dict[str, Any] = {}
        for name, key, kind in (
            ("confidence", "CONFIDENCE", float),
            ("iou_threshold", "IOU_THRESHOLD", float),
            ("max_candidates", "MAX_CANDIDATES", int),
            ("max_detections", "MAX_DETECTIONS", int),
        ):
            if source.get(key):
                try:
                    defaults[name] = kind(float(source[key]))
                except ValueError as error:
                    raise ValueError(f"environment variable {key}={source[key]!r} is not a number") from error
        if source.get("CLASS_AGNOSTIC_NMS"):
            defaults["class_agnostic_nms"] = source["CLASS_AGNOSTIC_NMS"].strip().lower() in {"1", "true", "yes", "on"}
        defaults.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_kwargs(**defaults)
