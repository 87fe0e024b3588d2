"""Object detection models: preprocessing, an ONNX Runtime session and decoding, returning
Roboflow's prediction JSON.

Example:
    >>> import numpy as np
    >>> from framepipe.models import get_model
    >>> model = get_model("framepipe-shapes/1")
    >>> result = model.infer(np.zeros((360, 640, 3), np.uint8))
    >>> sorted(result), result["image"]
    (['image', 'predictions'], {'width': 640, 'height': 360})
"""

from __future__ import annotations

import ast
import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from framepipe.errors import ModelArtifactError, UnsupportedModelOutputError
from framepipe.models.decoders import Candidates, decode_yolov8
from framepipe.models.nms import non_max_suppression
from framepipe.models.preprocess import PAD_COLORS, STRETCH, ResizeGeometry, letterbox, stretch

if TYPE_CHECKING:
    import onnxruntime

    from framepipe.artifacts import ModelArtifacts

logger = logging.getLogger("framepipe.models")

DEFAULT_INPUT_SIZE = 640


@dataclass(frozen=True)
class InferenceParameters:
    """Post-processing settings, with Roboflow's pipeline defaults."""

    confidence: float = 0.4
    iou_threshold: float = 0.3
    class_agnostic_nms: bool = False
    max_candidates: int = 3000
    max_detections: int = 300


def _dimension(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def _metadata_names(session: onnxruntime.InferenceSession) -> list[str] | None:
    """Class names from an Ultralytics-style ``names`` metadata entry (``{0: 'person', ...}``)."""
    raw = session.get_modelmeta().custom_metadata_map.get("names")
    if not raw:
        return None
    try:
        parsed = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    if isinstance(parsed, dict):
        return [str(parsed[k]) for k in sorted(parsed)]
    if isinstance(parsed, list):
        return [str(n) for n in parsed]
    return None


class ObjectDetectionModel:
    """A loaded detector. ``infer`` takes BGR ``uint8`` images (one or a list) and returns one
    Roboflow object-detection dict per image, boxes in original-frame pixels.

    The three stages are also public (``preprocess``, ``run``, ``postprocess``) so that a
    pipeline can overlap them. ``run`` may be called from several threads at once.
    """

    def __init__(self, artifacts: ModelArtifacts, session: onnxruntime.InferenceSession) -> None:
        self.model_id = artifacts.model_id
        self.artifacts = artifacts
        self.session = session
        model_input = session.get_inputs()[0]
        self.input_name = model_input.name
        shape = list(model_input.shape)
        if len(shape) != 4:
            raise UnsupportedModelOutputError(
                f"{artifacts.weights_path}: expected an image input [batch, 3, height, width], got {shape}"
            )
        self.input_dtype = np.float16 if model_input.type == "tensor(float16)" else np.float32
        resize = artifacts.environment.get("PREPROCESSING", {}).get("resize", {})
        width = _dimension(shape[3]) or _int_field(resize, "width", artifacts) or DEFAULT_INPUT_SIZE
        height = _dimension(shape[2]) or _int_field(resize, "height", artifacts) or DEFAULT_INPUT_SIZE
        self.input_size: tuple[int, int] = (width, height)
        self.batch_size: int | None = _dimension(shape[0])
        self.resize_format = str(resize.get("format", STRETCH)) if resize.get("enabled", True) else STRETCH
        if self.resize_format != STRETCH and self.resize_format not in PAD_COLORS:
            raise ModelArtifactError(
                f"{artifacts.folder / 'environment.json'}: PREPROCESSING.resize.format {self.resize_format!r} is not "
                f"one of {[STRETCH, *PAD_COLORS]}"
            )
        self.class_names = self._class_names(artifacts)
        self.task_type = (artifacts.model_type or {}).get("project_task_type", "object-detection")
        self.provider = session.get_providers()[0]
        self._local = threading.local()

    def _class_names(self, artifacts: ModelArtifacts) -> list[str]:
        outputs = self.session.get_outputs()
        shapes = [list(o.shape) for o in outputs]
        if len(outputs) != 1 or len(shapes[0]) != 3:
            raise UnsupportedModelOutputError(
                f"{artifacts.weights_path}: no decoder knows outputs {shapes}; this version reads the YOLOv8 "
                "layout [batch, 4 + classes, anchors]"
            )
        channels = _dimension(shapes[0][1])
        names = artifacts.class_names or _metadata_names(self.session)
        if names is None:
            if channels is None:
                raise ModelArtifactError(f"{artifacts.weights_path}: cannot tell the number of classes")
            names = [f"class_{i}" for i in range(channels - 4)]
        if channels is not None and channels != 4 + len(names):
            raise ModelArtifactError(
                f"{artifacts.weights_path}: the network outputs {channels - 4} classes but {len(names)} class names "
                f"were given ({artifacts.folder / 'class_names.txt'})"
            )
        return names

    # -- stages ------------------------------------------------------------------------------------
    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[ResizeGeometry]]:
        """Resize BGR images into one ``[B, 3, H, W]`` RGB tensor scaled to 0..1."""
        width, height = self.input_size
        tensor = np.empty((len(images), 3, height, width), self.input_dtype)
        canvas = getattr(self._local, "canvas", None)
        if canvas is None or canvas.shape != (height, width, 3):
            canvas = self._local.canvas = np.empty((height, width, 3), np.uint8)
        geometries = []
        for index, image in enumerate(images):
            if image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"expected a BGR image of shape (H, W, 3), got {image.shape}")
            if self.resize_format == STRETCH:
                _, geometry = stretch(image, width, height, out=canvas)
            else:
                _, geometry = letterbox(image, width, height, PAD_COLORS[self.resize_format], out=canvas)
            np.multiply(canvas.transpose(2, 0, 1)[::-1], 1 / 255, out=tensor[index], casting="unsafe")
            geometries.append(geometry)
        return tensor, geometries

    def run(self, tensor: np.ndarray) -> np.ndarray:
        """The raw network output for a batch, fed in chunks when the model's batch is fixed."""
        step = self.batch_size or len(tensor)
        outputs = []
        for start in range(0, len(tensor), max(step, 1)):
            chunk = tensor[start : start + step]
            if self.batch_size is not None and len(chunk) < self.batch_size:
                padded = np.zeros((self.batch_size, *tensor.shape[1:]), tensor.dtype)
                padded[: len(chunk)] = chunk
                outputs.append(self.session.run(None, {self.input_name: padded})[0][: len(chunk)])
            else:
                outputs.append(self.session.run(None, {self.input_name: chunk})[0])
        return np.concatenate(outputs) if len(outputs) > 1 else outputs[0]

    def postprocess(
        self, output: np.ndarray, geometries: Sequence[ResizeGeometry], parameters: InferenceParameters
    ) -> list[dict[str, Any]]:
        """Decode, suppress and map back to each frame; returns Roboflow's JSON per image."""
        candidates = decode_yolov8(
            output.astype(np.float32, copy=False), parameters.confidence, parameters.max_candidates
        )
        return [self._to_json(c, g, parameters) for c, g in zip(candidates, geometries, strict=True)]

    def _to_json(self, found: Candidates, geometry: ResizeGeometry, parameters: InferenceParameters) -> dict[str, Any]:
        width, height = geometry.source_size
        keep = non_max_suppression(
            found.boxes,
            found.scores,
            parameters.iou_threshold,
            None if parameters.class_agnostic_nms else found.class_ids,
            parameters.max_detections,
        )
        boxes = np.round(geometry.to_source(found.boxes[keep]))
        predictions = []
        for (x1, y1, x2, y2), score, class_id in zip(
            boxes.tolist(), found.scores[keep].tolist(), found.class_ids[keep].tolist(), strict=True
        ):
            if x2 <= x1 or y2 <= y1:
                continue
            predictions.append(
                {
                    "x": (x1 + x2) / 2,
                    "y": (y1 + y2) / 2,
                    "width": x2 - x1,
                    "height": y2 - y1,
                    "confidence": round(score, 4),
                    "class": self.class_names[class_id],
                    "class_id": class_id,
                    "detection_id": str(uuid.uuid4()),
                }
            )
        return {"image": {"width": width, "height": height}, "predictions": predictions}

    # -- one call ----------------------------------------------------------------------------------
    @overload
    def infer(self, images: np.ndarray, **parameters: Any) -> dict[str, Any]: ...

    @overload
    def infer(self, images: Sequence[np.ndarray], **parameters: Any) -> list[dict[str, Any]]: ...

    def infer(
        self, images: np.ndarray | Sequence[np.ndarray], **parameters: Any
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """Detect objects in one BGR image (returns a dict) or a list of them (returns a list).

        Keyword parameters: ``confidence``, ``iou_threshold``, ``class_agnostic_nms``,
        ``max_candidates``, ``max_detections`` (``None`` keeps the default).
        """
        single = isinstance(images, np.ndarray) and images.ndim == 3
        batch = [images] if single else list(images)
        if not batch:
            return []
        settings = InferenceParameters(**{k: v for k, v in parameters.items() if v is not None})
        tensor, geometries = self.preprocess(batch)  # type: ignore[arg-type]
        results = self.postprocess(self.run(tensor), geometries, settings)
        return results[0] if single else results

    def __repr__(self) -> str:
        return (
            f"ObjectDetectionModel({self.model_id!r}, classes={len(self.class_names)}, input={self.input_size}, "
            f"batch={self.batch_size or 'dynamic'}, provider={self.provider})"
        )


def _int_field(resize: dict[str, Any], key: str, artifacts: ModelArtifacts) -> int | None:
    if key not in resize:
        return None
    try:
        value = int(resize[key])
    except (TypeError, ValueError) as error:
        raise ModelArtifactError(
            f"{artifacts.folder / 'environment.json'}: PREPROCESSING.resize.{key} must be a whole number, "
            f"got {resize[key]!r}"
        ) from error
    if value <= 0:
        raise ModelArtifactError(
            f"{artifacts.folder / 'environment.json'}: PREPROCESSING.resize.{key} must be positive"
        )
    return value
