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
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from framepipe.errors import ModelArtifactError, UnsupportedModelOutputError
from framepipe.models.decoders import Candidates, Decoder, choose_decoder
from framepipe.models.environment import PreprocessingConfig, parse_preprocessing
from framepipe.models.nms import non_max_suppression
from framepipe.models.preprocess import Preprocessor, ResizeGeometry

if TYPE_CHECKING:
    import onnxruntime

    from framepipe.artifacts import ModelArtifacts

logger = logging.getLogger("framepipe.models")

DEFAULT_INPUT_SIZE = 640
RFDETR_MEAN = (0.485, 0.456, 0.406)
RFDETR_STD = (0.229, 0.224, 0.225)
RFDETR_BACKGROUND = "background_class83422"
_GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


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


def _dimension(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def _parse_literal(raw: str | None) -> Any:
    if not raw:
        return None
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None


def metadata_class_names(metadata: dict[str, str]) -> list[str] | None:
    """Class names from an Ultralytics-style ``names`` metadata entry (``{0: 'person', ...}``)."""
    parsed = _parse_literal(metadata.get("names"))
    if isinstance(parsed, dict):
        try:
            return [str(parsed[k]) for k in sorted(parsed, key=int)]
        except (TypeError, ValueError):
            return None
    if isinstance(parsed, list):
        return [str(n) for n in parsed]
    return None


def _metadata_size(metadata: dict[str, str]) -> tuple[int, int] | None:
    """``(width, height)`` from Ultralytics' ``imgsz`` (``[h, w]`` or one number)."""
    parsed = _parse_literal(metadata.get("imgsz"))
    if isinstance(parsed, int) and parsed > 0:
        return parsed, parsed
    if isinstance(parsed, (list, tuple)) and len(parsed) == 2 and all(isinstance(v, int) and v > 0 for v in parsed):
        return int(parsed[1]), int(parsed[0])
    return None


def _resolution(artifacts: ModelArtifacts) -> tuple[int, int] | None:
    """RF-DETR's ``RESOLUTION`` (one number or ``[w, h]``) from ``environment.json``."""
    value = artifacts.environment.get("RESOLUTION")
    if isinstance(value, int) and value > 0:
        return value, value
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value):
        return value[0], value[1]
    if value is not None:
        raise ModelArtifactError(f"{artifacts.folder / 'environment.json'}: RESOLUTION must be a size, got {value!r}")
    return None


def _classes_in_outputs(decoder: Decoder, shapes: list[list[Any]]) -> int | None:
    if decoder.name == "yolov8":
        channels = _dimension(shapes[0][1])
        return channels - 4 if channels else None
    if decoder.name == "yolov5":
        channels = _dimension(shapes[0][2])
        return channels - 5 if channels else None
    if decoder.name in ("yolo-nas", "rf-detr"):
        return _dimension(shapes[1][2])
    return None


class ObjectDetectionModel:
    """A loaded detector. ``infer`` takes BGR ``uint8`` images (one or a list) and returns one
    Roboflow object-detection dict per image, boxes in original-frame pixels.

    Attributes: ``class_names``, ``task_type``, ``input_size`` (width, height), ``batch_size``
    (``None`` when the batch axis is dynamic), ``provider``, ``decoder`` (layout name).
    The stages are public too (``preprocess``, ``run``, ``postprocess``) so that a pipeline can
    overlap them; ``run`` may be called from several threads at once.
    """

    def __init__(self, artifacts: ModelArtifacts, session: onnxruntime.InferenceSession) -> None:
        self.model_id = artifacts.model_id
        self.artifacts = artifacts
        self.session = session
        self.provider = session.get_providers()[0]
        metadata = dict(session.get_modelmeta().custom_metadata_map)
        model_input = session.get_inputs()[0]
        shape = list(model_input.shape)
        if len(shape) != 4 or _dimension(shape[1]) not in (None, 3):
            raise UnsupportedModelOutputError(
                f"{artifacts.weights_path}: expected one image input [batch, 3, height, width], got {model_input.name} "
                f"{shape}"
            )
        self.input_name = model_input.name
        self.input_dtype: type[np.floating] = np.float16 if model_input.type == "tensor(float16)" else np.float32
        self.batch_size: int | None = _dimension(shape[0])
        outputs = session.get_outputs()
        self.output_names = [o.name for o in outputs]
        shapes = [list(o.shape) for o in outputs]
        model_type = (artifacts.model_type or {}).get("model_type")
        names = artifacts.class_names or metadata_class_names(metadata)
        self.decoder, reason = choose_decoder(
            shapes, self.output_names, len(names) if names else None, model_type, metadata.get("task")
        )
        logger.debug("%s: %s decoder, chosen by %s", self.model_id, self.decoder.name, reason)
        in_outputs = _classes_in_outputs(self.decoder, shapes)
        if names is None:
            names = [f"class_{i}" for i in range(in_outputs or 0)]
        elif in_outputs is not None and in_outputs != len(names):
            raise ModelArtifactError(
                f"{artifacts.weights_path}: the network outputs {in_outputs} classes but {len(names)} class names "
                f"were given ({artifacts.folder / 'class_names.txt'})"
            )
        self._all_class_names = list(names)
        self._outputs_checked = False
        self._background = names.index(RFDETR_BACKGROUND) if RFDETR_BACKGROUND in names else None
        self.class_names = [n for n in names if n != RFDETR_BACKGROUND]
        self.task_type = (artifacts.model_type or {}).get("project_task_type", "object-detection")
        config = self._preprocessing(artifacts)
        fallback = config.size or _resolution(artifacts) or _metadata_size(metadata) or (DEFAULT_INPUT_SIZE,) * 2
        width = _dimension(shape[3]) or fallback[0]
        height = _dimension(shape[2]) or fallback[1]
        self.input_size: tuple[int, int] = (int(width), int(height))
        rfdetr = self.decoder.name == "rf-detr"
        self.preprocessor = Preprocessor(
            config,
            self.input_size,
            self.input_dtype,
            mean=RFDETR_MEAN if rfdetr else None,
            std=RFDETR_STD if rfdetr else None,
        )
        self._round_boxes = self.decoder.name != "rf-detr"  # as Roboflow: YOLO boxes in whole pixels
        self.use_io_binding = self.provider in _GPU_PROVIDERS

    def _preprocessing(self, artifacts: ModelArtifacts) -> PreprocessingConfig:
        environment_path = artifacts.folder / "environment.json"
        if not artifacts.environment:
            if artifacts.model_type is not None and not environment_path.is_file():
                raise ModelArtifactError(f"{environment_path} is missing: a Roboflow model folder needs it")
            # a bare ONNX file: Ultralytics' letterbox with grey edges
            return PreprocessingConfig("Fit (grey edges) in")
        try:
            return parse_preprocessing(artifacts.environment.get("PREPROCESSING", {}))
        except ModelArtifactError as error:
            raise ModelArtifactError(f"{environment_path}: {error}") from error

    # -- stages ------------------------------------------------------------------------------------
    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[ResizeGeometry]]:
        """BGR images into one ``[B, 3, H, W]`` tensor (this thread's reusable buffer)."""
        return self.preprocessor(images)

    def _run_once(self, batch: np.ndarray) -> list[np.ndarray]:
        if not self.use_io_binding:
            return list(self.session.run(None, {self.input_name: batch}))
        binding = self.session.io_binding()  # inputs copied to the device once, outputs once back
        binding.bind_cpu_input(self.input_name, np.ascontiguousarray(batch))
        for name in self.output_names:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        return list(binding.copy_outputs_to_cpu())

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """The raw network outputs for a batch; a model with a fixed batch size is fed in chunks
        of it (the last one padded)."""
        step = self.batch_size or len(tensor)
        parts: list[list[np.ndarray]] = []
        for start in range(0, len(tensor), max(step, 1)):
            chunk = tensor[start : start + step]
            if self.batch_size is not None and len(chunk) < self.batch_size:
                padded = np.zeros((self.batch_size, *tensor.shape[1:]), tensor.dtype)
                padded[: len(chunk)] = chunk
                parts.append([out[: len(chunk)] for out in self._run_once(padded)])
            else:
                parts.append(self._run_once(chunk))
        if len(parts) == 1:
            return parts[0]
        return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]

    def postprocess(
        self, outputs: Sequence[np.ndarray], geometries: Sequence[ResizeGeometry], parameters: InferenceParameters
    ) -> list[dict[str, Any]]:
        """Decode, filter, suppress and map back to each frame; Roboflow's JSON per image."""
        as_float = [o.astype(np.float32, copy=False) for o in outputs]
        if not self._outputs_checked:
            self._check_outputs(as_float)
        candidates = self.decoder(
            as_float, parameters.confidence, self.input_size, parameters.max_candidates, parameters.max_detections
        )
        allowed = None
        if parameters.class_filter is not None:
            allowed = np.array([i for i, n in enumerate(self.class_names) if n in parameters.class_filter], np.int64)
        return [self._to_json(c, g, parameters, allowed) for c, g in zip(candidates, geometries, strict=True)]

    def _check_outputs(self, outputs: Sequence[np.ndarray]) -> None:
        """The first real outputs must fit the decoder (their axes may have been symbolic)."""
        shapes = [list(o.shape) for o in outputs]
        names = self._all_class_names
        found = _classes_in_outputs(self.decoder, shapes)
        problem = None
        if self.decoder.name in ("yolov8", "yolov5", "end-to-end") and (len(shapes) != 1 or len(shapes[0]) != 3):
            problem = "expected one output of rank 3"
        elif self.decoder.name == "end-to-end" and shapes[0][2] != 6:
            problem = "expected 6 values per detection"
        elif found is not None and found != len(names):
            problem = f"{found} classes in the outputs but {len(names)} class names"
        if problem:
            raise UnsupportedModelOutputError(f"{self.model_id}: {self.decoder.name} outputs {shapes}: {problem}")
        self._outputs_checked = True

    def _to_json(
        self, found: Candidates, geometry: ResizeGeometry, parameters: InferenceParameters, allowed: np.ndarray | None
    ) -> dict[str, Any]:
        width, height = geometry.frame
        boxes, scores, class_ids = found.boxes, found.scores, found.class_ids
        if self._background is not None:
            keep = class_ids != self._background
            boxes, scores, class_ids = boxes[keep], scores[keep], class_ids[keep]
            class_ids = class_ids - (class_ids > self._background)
        if allowed is not None:
            keep = np.isin(class_ids, allowed)
            boxes, scores, class_ids = boxes[keep], scores[keep], class_ids[keep]
        if self.decoder.nms:
            keep = non_max_suppression(
                boxes,
                scores,
                parameters.iou_threshold,
                None if parameters.class_agnostic_nms else class_ids,
                parameters.max_detections,
            )
        else:
            keep = np.arange(min(len(boxes), max(parameters.max_detections, 0)))
        mapped = geometry.to_source(boxes[keep])
        if self._round_boxes:
            mapped = np.round(mapped)
        names = self.class_names
        predictions = []
        for (x1, y1, x2, y2), score, class_id in zip(
            mapped.tolist(), scores[keep].tolist(), class_ids[keep].tolist(), strict=True
        ):
            if x2 <= x1 or y2 <= y1:
                continue  # wholly outside the frame (e.g. in the letterbox padding)
            predictions.append(
                {
                    "x": (x1 + x2) / 2,
                    "y": (y1 + y2) / 2,
                    "width": x2 - x1,
                    "height": y2 - y1,
                    "confidence": round(score, 4),
                    "class": names[class_id] if 0 <= class_id < len(names) else f"class_{class_id}",
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
        ``max_candidates``, ``max_detections``, ``class_filter`` (``None`` keeps the default).
        """
        single = isinstance(images, np.ndarray) and images.ndim == 3
        batch: list[np.ndarray] = [images] if single else list(images)  # type: ignore[list-item]
        settings = InferenceParameters.from_kwargs(**parameters)
        if not batch:
            return []
        tensor, geometries = self.preprocess(batch)
        results = self.postprocess(self.run(tensor), geometries, settings)
        return results[0] if single else results

    def __repr__(self) -> str:
        return (
            f"ObjectDetectionModel({self.model_id!r}, {self.decoder.name}, classes={len(self.class_names)}, "
            f"input={self.input_size}, batch={self.batch_size or 'dynamic'}, provider={self.provider})"
        )
