"""framepipe: real-time video inference with ONNX Runtime.

Decoders on threads, bounded queues, a batched ONNX Runtime worker and sinks, behind Roboflow
Inference's ``InferencePipeline`` API. Names are imported on first use, so ``import framepipe``
stays quick.

Example:
    >>> from framepipe import InferencePipeline
    >>> from framepipe.sinks import render_boxes
    >>> pipeline = InferencePipeline.init(  # doctest: +SKIP
    ...     model_id="framepipe-shapes/1", video_reference="clip.mp4", on_prediction=render_boxes
    ... )
    >>> pipeline.start()  # doctest: +SKIP
    >>> pipeline.join()  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "InferencePipeline": "framepipe.pipeline",
    "SinkMode": "framepipe.pipeline",
    "PipelineSpec": "framepipe.pipeline",
    "EventType": "framepipe.events",
    "VideoFrame": "framepipe.sources",
    "VideoSource": "framepipe.sources",
    "SourceProperties": "framepipe.sources",
    "StatusUpdate": "framepipe.sources",
    "UpdateSeverity": "framepipe.sources",
    "BufferFillingStrategy": "framepipe.sources",
    "BufferConsumptionStrategy": "framepipe.sources",
    "get_model": "framepipe.models",
    "ObjectDetectionModel": "framepipe.models",
}

__all__ = [
    "BufferConsumptionStrategy",
    "BufferFillingStrategy",
    "EventType",
    "InferencePipeline",
    "ObjectDetectionModel",
    "PipelineSpec",
    "SinkMode",
    "SourceProperties",
    "StatusUpdate",
    "UpdateSeverity",
    "VideoFrame",
    "VideoSource",
    "__version__",
    "get_model",
]

if TYPE_CHECKING:
    from framepipe.events import EventType
    from framepipe.models import ObjectDetectionModel, get_model
    from framepipe.pipeline import InferencePipeline, PipelineSpec, SinkMode
    from framepipe.sources import (
        BufferConsumptionStrategy,
        BufferFillingStrategy,
        SourceProperties,
        StatusUpdate,
        UpdateSeverity,
        VideoFrame,
        VideoSource,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'framepipe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
