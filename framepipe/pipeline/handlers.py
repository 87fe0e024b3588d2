"""From a model to the pipeline's ``on_video_frame``: the one adapter between models and the
engine.

``load_model_handler`` plans the inference workers (batches in flight), takes the model from the
process's table and holds it (``lease``) until the pipeline ends, and reads Roboflow's
post-processing defaults (``CONFIDENCE``, ``IOU_THRESHOLD``, ``CLASS_AGNOSTIC_NMS``,
``MAX_CANDIDATES``, ``MAX_DETECTIONS``) from the environment when it is called; ``model_handler``
turns a model and its parameters into the function the engine calls with each batch of frames:
the frames go to the model's batching executor (shared with every other caller of the model) and
come back as typed predictions, which the dispatcher turns into Roboflow's JSON.

Example:
    >>> from framepipe.pipeline.handlers import load_model_handler
    >>> loaded = load_model_handler("framepipe-shapes/0", live=False)
    >>> loaded.on_video_frame([])
    []
    >>> loaded.parameters.confidence
    0.4
    >>> loaded.lease.release()
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from framepipe.models import InferenceParameters, Model, ModelLease, acquire_model
from framepipe.pipeline.workers import plan_workers
from framepipe.predictions import FramePrediction
from framepipe.sources.entities import VideoFrame

__all__ = ["InferenceHandler", "ModelHandler", "load_model_handler", "model_handler"]

logger = logging.getLogger("framepipe.pipeline")

_ROBOFLOW_DEFAULTS: dict[str, Any] = {"mask_decode_mode": "accurate", "tradeoff_factor": 0.0}
"""``InferencePipeline.init``'s defaults for task parameters: passing them to another task is no mistake."""
_warned: set[str] = set()


def _warn_once(name: str, message: str) -> None:
    if name not in _warned:
        _warned.add(name)
        logger.warning(message)


InferenceHandler = Callable[[list[VideoFrame]], Sequence[Any]]


def model_handler(model: Model, parameters: InferenceParameters) -> InferenceHandler:
    """``on_video_frame`` for ``model``: the batch goes through the model's executor, one typed
    prediction per frame comes back."""
    executor = model.executor

    def on_video_frame(frames: list[VideoFrame]) -> list[FramePrediction]:
        if not frames:
            return []
        return executor.infer([frame.image for frame in frames], parameters)

    return on_video_frame


@dataclass(frozen=True)
class ModelHandler:
    """A held model, its post-processing parameters, the handler and the workers planned for it;
    ``lease.release()`` when the pipeline ends."""

    model: Model
    parameters: InferenceParameters
    on_video_frame: InferenceHandler
    inference_workers: int
    lease: ModelLease[Model]


def load_model_handler(
    model_id: str,
    *,
    live: bool,
    api_key: str | None = None,
    inference_workers: int | None = None,
    confidence: float | None = None,
    iou_threshold: float | None = None,
    class_agnostic_nms: bool | None = None,
    max_candidates: int | None = None,
    max_detections: int | None = None,
    class_filter: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    task_parameters: Mapping[str, Any] | None = None,
) -> ModelHandler:
    """Load and hold ``model_id`` for a pipeline (``live``: any source is live, which also chooses
    the process's ONNX Runtime plan if no model chose it yet); ``None`` means Roboflow's default,
    overridden by its environment variable. ``task_parameters`` (e.g. ``mask_decode_mode``) go to
    a model whose task has them; for another task a value other than the default is warned about
    once and ignored."""
    workers = plan_workers(inference_workers, live=live)
    lease = acquire_model(model_id, api_key=api_key, workload="latency" if live else "throughput")
    try:
        kind = type(lease.model.parameters())  # this task's parameters
        known = set(getattr(kind, "__dataclass_fields__", {}))
        extra = {k: v for k, v in (task_parameters or {}).items() if v is not None and k in known}
        for name in sorted(set(task_parameters or {}) - known):
            value = (task_parameters or {})[name]
            if value is not None and value != _ROBOFLOW_DEFAULTS.get(name):
                _warn_once(name, f"{name}={value!r} does not apply to {lease.model.task_type} models; ignored")
        parameters = kind.from_env(
            env,
            **extra,
            confidence=confidence,
            iou_threshold=iou_threshold,
            class_agnostic_nms=class_agnostic_nms,
            max_candidates=max_candidates,
            max_detections=max_detections,
            class_filter=tuple(class_filter) if class_filter is not None else None,
        )
    except BaseException:
        lease.release()
        raise
    return ModelHandler(lease.model, parameters, model_handler(lease.model, parameters), workers, lease)
