"""What the client sends and gets back: ``InferenceConfiguration`` (``inference_sdk``'s fields and
their mapping onto each route's parameters, plus the client's own retry settings) and the server's
descriptions (``ServerInfo``, ``ModelDescription``, ``RegisteredModels``).

Example:
    >>> from framepipe.client.entities import HTTPClientMode, InferenceConfiguration
    >>> config = InferenceConfiguration(confidence_threshold=0.5, iou_threshold=0.4, max_batch_size=4)
    >>> config.to_api_call_parameters(HTTPClientMode.V1, "object-detection")
    {'confidence': 0.5, 'iou_threshold': 0.4, 'visualize_predictions': False, 'disable_active_learning': False}
    >>> config.to_legacy_call_parameters()
    {'confidence': 0.5, 'overlap': 0.4, 'disable_active_learning': False}
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, Literal

from framepipe.client.errors import InvalidParameterError, ModelTaskTypeNotSupportedError

CLASSIFICATION_TASK = "classification"
OBJECT_DETECTION_TASK = "object-detection"
INSTANCE_SEGMENTATION_TASK = "instance-segmentation"
KEYPOINTS_DETECTION_TASK = "keypoint-detection"
DEFAULT_MAX_INPUT_SIZE = 1024
DEFAULT_IMAGE_EXTENSIONS = ["jpg", "jpeg", "JPG", "JPEG", "png", "PNG"]
RETRYABLE_STATUS_CODES = frozenset({429, 503, 504})

# Roboflow's hosted APIs (inference_sdk/config.py): a client for one of them speaks API v0
ALL_ROBOFLOW_API_URLS = (
    "https://detect.roboflow.com",
    "https://outline.roboflow.com",
    "https://classify.roboflow.com",
    "https://infer.roboflow.com",
    "https://serverless.roboflow.com",
    "https://lambda-object-detection.staging.roboflow.com",
    "https://lambda-instance-segmentation.staging.roboflow.com",
    "https://lambda-classification.staging.roboflow.com",
    "https://serverless.roboflow.one",
)

Confidence = float | Literal["best", "default"]


class HTTPClientMode(str, Enum):
    """API v0 (``POST /{project}/{version}``, one image a request) or v1 (``/infer/...``, JSON)."""

    V0 = "v0"
    V1 = "v1"


class ApiKeyTransport(str, Enum):
    """How the API key travels: ``legacy`` (query / JSON body), ``both`` (and ``Authorization:
    Bearer``), ``header`` (only the header)."""

    LEGACY = "legacy"
    BOTH = "both"
    HEADER = "header"


class VisualisationResponseFormat(str, Enum):
    """What ``visualization`` becomes in a result: the base64 text, a BGR numpy image or a PIL image."""

    BASE64 = "base64"
    NUMPY = "numpy"
    PILLOW = "pillow"


@dataclass(frozen=True)
class ServerInfo:
    """``GET /info``."""

    name: str
    version: str
    uuid: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServerInfo:
        return cls(str(data.get("name", "")), str(data.get("version", "")), str(data.get("uuid", "")))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "uuid": self.uuid}


@dataclass(frozen=True)
class ModelDescription:
    """One loaded model in ``GET /model/registry``."""

    model_id: str
    task_type: str
    batch_size: int | str | None = None
    input_height: int | None = None
    input_width: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelDescription:
        return cls(
            model_id=str(data["model_id"]),
            task_type=str(data.get("task_type")),
            batch_size=data.get("batch_size"),
            input_height=data.get("input_height"),
            input_width=data.get("input_width"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class RegisteredModels:
    """``ModelsDescriptions``: the models the server holds."""

    models: list[ModelDescription]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegisteredModels:
        return cls([ModelDescription.from_dict(m) for m in data.get("models") or []])

    def to_dict(self) -> dict[str, Any]:
        return {"models": [m.to_dict() for m in self.models]}

    def find(self, model_id: str) -> ModelDescription | None:
        """The description of ``model_id``, or None."""
        return next((m for m in self.models if m.model_id == model_id), None)


_DETECTION_PARAMETERS = (
    ("disable_preproc_auto_orientation", "disable_preproc_auto_orient"),
    ("disable_preproc_contrast", "disable_preproc_contrast"),
    ("disable_preproc_grayscale", "disable_preproc_grayscale"),
    ("disable_preproc_static_crop", "disable_preproc_static_crop"),
    ("class_agnostic_nms", "class_agnostic_nms"),
    ("class_filter", "class_filter"),
    ("confidence_threshold", "confidence"),
    ("fix_batch_size", "fix_batch_size"),
    ("iou_threshold", "iou_threshold"),
    ("max_detections", "max_detections"),
    ("max_candidates", "max_candidates"),
    ("visualize_labels", "visualization_labels"),
    ("stroke_width", "visualization_stroke_width"),
    ("visualize_predictions", "visualize_predictions"),
    ("disable_active_learning", "disable_active_learning"),
    ("active_learning_target_dataset", "active_learning_target_dataset"),
    ("source", "source"),
    ("source_info", "source_info"),
)
_SEGMENTATION_PARAMETERS = (
    ("mask_decode_mode", "mask_decode_mode"),
    ("tradeoff_factor", "tradeoff_factor"),
    ("response_mask_format", "response_mask_format"),
)
_CLASSIFICATION_PARAMETERS = (
    ("disable_preproc_auto_orientation", "disable_preproc_auto_orient"),
    ("disable_preproc_contrast", "disable_preproc_contrast"),
    ("disable_preproc_grayscale", "disable_preproc_grayscale"),
    ("disable_preproc_static_crop", "disable_preproc_static_crop"),
    ("confidence_threshold", "confidence"),
    ("visualize_predictions", "visualize_predictions"),
    ("stroke_width", "visualization_stroke_width"),
    ("disable_active_learning", "disable_active_learning"),
    ("source", "source"),
    ("source_info", "source_info"),
    ("active_learning_target_dataset", "active_learning_target_dataset"),
)
_LEGACY_PARAMETERS = (
    ("confidence_threshold", "confidence"),
    ("keypoint_confidence_threshold", "keypoint_confidence"),
    ("format", "format"),
    ("visualize_labels", "labels"),
    ("mask_decode_mode", "mask_decode_mode"),
    ("tradeoff_factor", "tradeoff_factor"),
    ("max_detections", "max_detections"),
    ("iou_threshold", "overlap"),
    ("stroke_width", "stroke"),
    ("disable_preproc_auto_orientation", "disable_preproc_auto_orient"),
    ("disable_preproc_contrast", "disable_preproc_contrast"),
    ("disable_preproc_grayscale", "disable_preproc_grayscale"),
    ("disable_preproc_static_crop", "disable_preproc_static_crop"),
    ("disable_active_learning", "disable_active_learning"),
    ("active_learning_target_dataset", "active_learning_target_dataset"),
    ("source", "source"),
    ("source_info", "source_info"),
    ("response_mask_format", "response_mask_format"),
    ("count_inference", "countinference"),
    ("service_secret", "service_secret"),
)


@dataclass(frozen=True)
class InferenceConfiguration:
    """``inference_sdk.InferenceConfiguration``: task parameters (``None``: the server's default),
    visualisation, and the client's behaviour.

    Client behaviour: ``max_batch_size`` images per request (API v1), ``max_concurrent_requests``
    requests in flight (a sliding pool: the next request starts as soon as any one ends),
    ``client_downsizing_disabled=False`` to shrink images to the model's input size (or
    ``default_max_input_size``) before sending, predictions scaled back. framepipe's additions:
    ``retry_attempts`` tries on 429/503/504 and on connection errors, waiting ``retry_backoff_s``,
    doubled each time (capped at ``retry_backoff_max_s``; a ``Retry-After`` header is honoured
    within that cap), and ``request_timeout_s`` for each request (None: no limit).
    """

    confidence_threshold: Confidence | None = None
    keypoint_confidence_threshold: float | None = None
    format: str | None = None
    mask_decode_mode: str | None = None
    tradeoff_factor: float | None = None
    max_candidates: int | None = None
    max_detections: int | None = None
    iou_threshold: float | None = None
    stroke_width: int | None = None
    count_inference: bool | None = None
    service_secret: str | None = None
    disable_preproc_auto_orientation: bool | None = None
    disable_preproc_contrast: bool | None = None
    disable_preproc_grayscale: bool | None = None
    disable_preproc_static_crop: bool | None = None
    class_agnostic_nms: bool | None = None
    class_filter: list[str] | None = None
    fix_batch_size: bool | None = None
    visualize_predictions: bool = False
    visualize_labels: bool | None = None
    output_visualisation_format: VisualisationResponseFormat = VisualisationResponseFormat.BASE64
    image_extensions_for_directory_scan: list[str] | None = field(default_factory=lambda: DEFAULT_IMAGE_EXTENSIONS)
    client_downsizing_disabled: bool = True
    default_max_input_size: int = DEFAULT_MAX_INPUT_SIZE
    disable_active_learning: bool = False
    active_learning_target_dataset: str | None = None
    max_concurrent_requests: int = 1
    max_batch_size: int = 1
    source: str | None = None
    source_info: str | None = None
    response_mask_format: Literal["polygon", "rle"] | None = None
    api_key_transport: ApiKeyTransport | str | None = None
    retry_attempts: int = 3
    retry_backoff_s: float = 1.0
    retry_backoff_max_s: float = 30.0
    request_timeout_s: float | None = 60.0

    def __post_init__(self) -> None:
        for name in ("max_concurrent_requests", "max_batch_size", "retry_attempts", "default_max_input_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidParameterError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("retry_backoff_s", "retry_backoff_max_s"):
            if getattr(self, name) < 0:
                raise InvalidParameterError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.request_timeout_s is not None and self.request_timeout_s <= 0:
            raise InvalidParameterError(f"request_timeout_s must be > 0 or None, got {self.request_timeout_s!r}")
        try:
            object.__setattr__(
                self, "output_visualisation_format", VisualisationResponseFormat(self.output_visualisation_format)
            )
            if self.api_key_transport is not None:
                object.__setattr__(self, "api_key_transport", ApiKeyTransport(self.api_key_transport))
        except ValueError as error:
            raise InvalidParameterError(str(error)) from None

    @classmethod
    def init_default(cls) -> InferenceConfiguration:
        return cls()

    @property
    def transport(self) -> ApiKeyTransport:
        """The API key transport in force (``legacy`` unless chosen)."""
        return ApiKeyTransport(self.api_key_transport or ApiKeyTransport.LEGACY)

    def _pick(self, specification: tuple[tuple[str, str], ...]) -> dict[str, Any]:
        values = ((wire, getattr(self, name)) for name, wire in specification)
        return {wire: value for wire, value in values if value is not None}

    def to_api_call_parameters(self, client_mode: HTTPClientMode, task_type: str) -> dict[str, Any]:
        """The parameters of a request for a model of ``task_type`` in ``client_mode``."""
        if client_mode is HTTPClientMode.V0:
            return self.to_legacy_call_parameters()
        if task_type == OBJECT_DETECTION_TASK:
            return self.to_object_detection_parameters()
        if task_type == INSTANCE_SEGMENTATION_TASK:
            return self.to_instance_segmentation_parameters()
        if task_type == CLASSIFICATION_TASK:
            return self.to_classification_parameters()
        if task_type == KEYPOINTS_DETECTION_TASK:
            return self.to_keypoints_detection_parameters()
        raise ModelTaskTypeNotSupportedError(f"Model task {task_type} is not supported by API v1 client.")

    def to_object_detection_parameters(self) -> dict[str, Any]:
        return self._pick(_DETECTION_PARAMETERS)

    def to_keypoints_detection_parameters(self) -> dict[str, Any]:
        return self._pick((*_DETECTION_PARAMETERS, ("keypoint_confidence_threshold", "keypoint_confidence")))

    def to_instance_segmentation_parameters(self) -> dict[str, Any]:
        return self._pick(_DETECTION_PARAMETERS + _SEGMENTATION_PARAMETERS)

    def to_classification_parameters(self) -> dict[str, Any]:
        return self._pick(_CLASSIFICATION_PARAMETERS)

    def to_legacy_call_parameters(self) -> dict[str, Any]:
        """API v0's query parameters (``overlap`` for the IoU threshold, ``stroke``, ``labels``)."""
        return self._pick(_LEGACY_PARAMETERS)

    def to_api_v1_query_parameters(self) -> dict[str, Any] | None:
        """The query of an API v1 request (accounting only), or None."""
        return self._pick((("service_secret", "service_secret"), ("count_inference", "countinference"))) or None
