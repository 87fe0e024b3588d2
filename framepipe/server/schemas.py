"""Request bodies of the inference server as pydantic models, with Roboflow's field names and defaults
(``inference/core/entities/requests/inference.py``). They live at the HTTP edge only: a validated body
becomes plain values (``task_parameters``) before anything reaches a model.

Fields Roboflow accepts and framepipe does not act on (active learning, usage accounting, the
``disable_preproc_*`` flags, ``fix_batch_size``) are accepted and ignored, as are unknown fields.

Example:
    >>> from framepipe.server.schemas import ObjectDetectionRequest
    >>> body = ObjectDetectionRequest.model_validate({"model_id": "a/1", "image": {"type": "base64", "value": "x"}})
    >>> body.confidence, body.iou_threshold, body.images()[0].type
    (0.4, 0.3, 'base64')
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ImageInput(BaseModel):
    """``InferenceRequestImage``: ``{type, value}``."""

    model_config = ConfigDict(extra="ignore")
    type: str = "base64"
    value: Any = None


class ModelRequest(BaseModel):
    """``AddModelRequest`` / ``ClearModelRequest``."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())
    model_id: str = Field(min_length=1, max_length=300)
    model_type: str | None = None
    api_key: str | None = Field(default=None, max_length=1000)


Confidence = float | Literal["best", "default"]


class InferenceRequest(BaseModel):
    """The fields every ``/infer`` body has (``CVInferenceRequest``)."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())
    id: str | None = None
    api_key: str | None = Field(default=None, max_length=1000)
    model_id: str = Field(min_length=1, max_length=300)
    model_type: str | None = None
    image: ImageInput | list[ImageInput]
    confidence: Confidence = 0.4
    visualize_predictions: bool = False
    visualization_labels: bool = False
    visualization_stroke_width: int = 1
    disable_active_learning: bool = False
    fix_batch_size: bool = False

    def images(self) -> list[ImageInput]:
        return self.image if isinstance(self.image, list) else [self.image]

    @property
    def is_list(self) -> bool:
        return isinstance(self.image, list)

    def task_parameters(self) -> dict[str, Any]:
        """The post-processing parameters the model's task takes."""
        return {"confidence": None if isinstance(self.confidence, str) else self.confidence}


class ObjectDetectionRequest(InferenceRequest):
    class_agnostic_nms: bool = False
    class_filter: list[str] | None = None
    iou_threshold: float = 0.3
    max_detections: int = Field(default=300, ge=0)
    max_candidates: int = Field(default=3000, ge=0)

    def task_parameters(self) -> dict[str, Any]:
        return {
            **super().task_parameters(),
            "class_agnostic_nms": self.class_agnostic_nms,
            "class_filter": self.class_filter,
            "iou_threshold": self.iou_threshold,
            "max_detections": self.max_detections,
            "max_candidates": self.max_candidates,
        }


class InstanceSegmentationRequest(ObjectDetectionRequest):
    mask_decode_mode: str = "accurate"
    tradeoff_factor: float = 0.0
    response_mask_format: str = "polygon"

    def task_parameters(self) -> dict[str, Any]:
        return {
            **super().task_parameters(),
            "mask_decode_mode": self.mask_decode_mode,
            "tradeoff_factor": self.tradeoff_factor,
            "response_mask_format": self.response_mask_format,
        }


class KeypointsDetectionRequest(ObjectDetectionRequest):
    keypoint_confidence: float = 0.0
    confidence: float = 0.4  # Roboflow refuses "best" here

    def task_parameters(self) -> dict[str, Any]:
        return {**super().task_parameters(), "keypoint_confidence": self.keypoint_confidence}


class ClassificationRequest(InferenceRequest):
    pass


REQUESTS: dict[str, tuple[str, type[InferenceRequest]]] = {
    "object_detection": ("object-detection", ObjectDetectionRequest),
    "instance_segmentation": ("instance-segmentation", InstanceSegmentationRequest),
    "classification": ("classification", ClassificationRequest),
    "keypoints_detection": ("keypoint-detection", KeypointsDetectionRequest),
}
"""Each ``/infer/<route>``: the task it serves and its body."""
