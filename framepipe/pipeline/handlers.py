"""From a model to the pipeline's ``on_video_frame``: the one adapter between models and the
engine.

``load_model_handler`` plans the inference workers, loads the model (shared per process) and
reads Roboflow's post-processing defaults (``CONFIDENCE``, ``IOU_THRESHOLD``,
``CLASS_AGNOSTIC_NMS``, ``MAX_CANDIDATES``, ``MAX_DETECTIONS``) from the environment when it is
called; ``model_handler`` turns a loaded model and its parameters into the function the engine
calls with each batch of frames.

Example:
    >>> from framepipe.pipeline.handlers import load_model_handler
    >>> loaded = load_model_handler("framepipe-shapes/0", live=False)
    >>> loaded.on_video_frame([])
    []
    >>> loaded.parameters.confidence
    0.4
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from framepipe._internal.env import env_flag, env_float
from framepipe.models import InferenceParameters, get_model
from framepipe.pipeline.workers import plan_workers
from framepipe.sources.entities import VideoFrame

__all__ = ["InferenceHandler", "ModelHandler", "load_model_handler", "model_handler"]

InferenceHandler = Callable[[list[VideoFrame]], Sequence[Any]]


def model_handler(model: Any, parameters: InferenceParameters) -> InferenceHandler:
    """``on_video_frame`` for ``model``: one batched call per batch, one prediction per frame."""

    def on_video_frame(frames: list[VideoFrame]) -> list[dict[str, Any]]:
        if not frames:
            return []
        tensor, geometries = model.preprocess([f.image for f in frames])
        return model.postprocess(model.run(tensor), geometries, parameters)

    return on_video_frame


@dataclass(frozen=True)
class ModelHandler:
    """A loaded model, its post-processing parameters, the handler and the workers planned for it."""

    model: Any
    parameters: InferenceParameters
    on_video_frame: InferenceHandler
    inference_workers: int


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
) -> ModelHandler:
    """Load ``model_id`` for a pipeline (``live``: any source is live); ``None`` means Roboflow's
    default, overridden by its environment variable."""
    workers, threads = plan_workers(inference_workers, live=live)
    model = get_model(model_id, api_key=api_key, intra_op_threads=threads)
    parameters = InferenceParameters(
        confidence=confidence if confidence is not None else env_float("CONFIDENCE", 0.4, env),
        iou_threshold=iou_threshold if iou_threshold is not None else env_float("IOU_THRESHOLD", 0.3, env),
        class_agnostic_nms=(
            class_agnostic_nms if class_agnostic_nms is not None else env_flag("CLASS_AGNOSTIC_NMS", False, env)
        ),
        max_candidates=max_candidates if max_candidates is not None else int(env_float("MAX_CANDIDATES", 3000, env)),
        max_detections=max_detections if max_detections is not None else int(env_float("MAX_DETECTIONS", 300, env)),
        class_filter=tuple(class_filter) if class_filter is not None else None,
    )
    return ModelHandler(model, parameters, model_handler(model, parameters), workers)
