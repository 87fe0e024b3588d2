"""A model that runs on ONNX Runtime: a session, the preprocessing of its ``environment.json``,
and the head that reads its outputs; it returns typed predictions, and Roboflow's JSON from
``infer``.

Example:
    >>> import numpy as np
    >>> from framepipe.models import get_model
    >>> model = get_model("framepipe-shapes/1")
    >>> result = model.infer(np.zeros((360, 640, 3), np.uint8))
    >>> sorted(result), result["image"]
    (['image', 'predictions'], {'width': 640, 'height': 360})
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from framepipe.errors import ModelArtifactError, UnsupportedModelOutputError
from framepipe.models.base import ExecutorCalls
from framepipe.models.environment import (
    ULTRALYTICS_CLASSIFY,
    ULTRALYTICS_LETTERBOX,
    PreprocessingConfig,
    parse_preprocessing,
)
from framepipe.models.executor import Slot
from framepipe.models.heads import Candidates, Head, OutputSpec, choose_head
from framepipe.models.heads.base import DecodeSettings, HeadContext, TaskHead, boxes_to_frame, dim, literal
from framepipe.models.nms import non_max_suppression
from framepipe.models.params import InferenceParameters
from framepipe.models.preprocess import PreprocessBuffers, Preprocessor, ResizeGeometry
from framepipe.models.session import DeviceBinding, binding_device
from framepipe.predictions import Detections, FramePrediction

if TYPE_CHECKING:
    import onnxruntime

    from framepipe.artifacts import ModelArtifacts

logger = logging.getLogger("framepipe.models")

DEFAULT_INPUT_SIZE = 640
DEFAULT_MAX_BATCH = 16
"""The most frames one run takes from the executor for a dynamic-batch model on a GPU."""
DEFAULT_MAX_BATCH_CPU = 2
"""The same on the CPU, where a larger batch is no faster per frame (YOLOv8n-640: 143, 174, 218 ms
per frame at batches 1, 2, 4 on a loaded 2-core host) and its activations cost memory (the server
at 16 clients: peak RSS 749 MB with batches of up to 16, 471 MB up to 4, 353 MB up to 2;
``benchmarks/server.py``)."""
RFDETR_BACKGROUND = "background_class83422"
_GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


def metadata_class_names(metadata: dict[str, str]) -> list[str] | None:
    """Class names from an Ultralytics-style ``names`` metadata entry (``{0: 'person', ...}``)."""
    parsed = literal(metadata.get("names"))
    if isinstance(parsed, dict):
        try:
            return [str(parsed[k]) for k in sorted(parsed, key=int)]
        except (TypeError, ValueError):
            return None
    if isinstance(parsed, list):
        return [str(n) for n in parsed]
    return None


def metadata_size(metadata: dict[str, str]) -> tuple[int, int] | None:
    """``(width, height)`` from Ultralytics' ``imgsz`` (``[h, w]`` or one number)."""
    parsed = literal(metadata.get("imgsz"))
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


def _preprocessing(artifacts: ModelArtifacts, task: str) -> PreprocessingConfig:
    environment_path = artifacts.folder / "environment.json"
    if not artifacts.environment:
        if artifacts.model_type is not None and not environment_path.is_file():
            raise ModelArtifactError(f"{environment_path} is missing: a Roboflow model folder needs it")
        # a bare ONNX file (an Ultralytics export): what Ultralytics' own predict does
        return PreprocessingConfig(ULTRALYTICS_CLASSIFY if task == "classification" else ULTRALYTICS_LETTERBOX)
    try:
        return parse_preprocessing(artifacts.environment.get("PREPROCESSING", {}))
    except ModelArtifactError as error:
        raise ModelArtifactError(f"{environment_path}: {error}") from error


class OnnxModel(ExecutorCalls):
    """A loaded ONNX model of any task its head declares (detection, instance segmentation,
    classification, keypoint detection). ``infer`` takes BGR ``uint8`` images (one or a
    list) and returns Roboflow's JSON per image, boxes in original-frame pixels; ``predict``
    returns typed ``FramePrediction``s. Both go through ``executor``, shared by every caller.

    Attributes: ``class_names``, ``task_type``, ``input_size`` (width, height), ``batch_size``
    (``None`` when the batch axis is dynamic), ``max_batch_size``, ``provider``, ``head``.
    """

    def __init__(self, artifacts: ModelArtifacts, session: onnxruntime.InferenceSession) -> None:
        self.model_id = artifacts.model_id
        self.artifacts = artifacts
        self.session = session
        self.provider = session.get_providers()[0]
        metadata = dict(session.get_modelmeta().custom_metadata_map)
        model_input = session.get_inputs()[0]
        shape = list(model_input.shape)
        if len(shape) != 4 or dim(shape[1]) not in (None, 3):
            raise UnsupportedModelOutputError(
                f"{artifacts.weights_path}: expected one image input [batch, 3, height, width], got {model_input.name} "
                f"{shape}"
            )
        self.input_name = model_input.name
        self.input_dtype: type[np.floating] = np.float16 if model_input.type == "tensor(float16)" else np.float32
        self.batch_size: int | None = dim(shape[0])
        on_gpu = self.provider in _GPU_PROVIDERS
        self.max_batch_size = self.batch_size or (DEFAULT_MAX_BATCH if on_gpu else DEFAULT_MAX_BATCH_CPU)
        outputs = session.get_outputs()
        self.output_names = [o.name for o in outputs]
        self.output_shapes = [list(o.shape) for o in outputs]
        names = artifacts.class_names or metadata_class_names(metadata)
        spec = OutputSpec(
            self.output_shapes,
            self.output_names,
            len(names) if names else None,
            (artifacts.model_type or {}).get("model_type"),
            metadata,
            (artifacts.model_type or {}).get("project_task_type"),
        )
        self.head: Head
        self.head, reason = choose_head(spec)
        logger.debug("%s: %s decoder, chosen by %s", self.model_id, self.head.name, reason)
        in_outputs = self.head.num_classes(self.output_shapes)
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
        self.task_type = self.head.task
        config = _preprocessing(artifacts, self.task_type)
        # Roboflow's models give whole-pixel boxes; a bare export gives Ultralytics' unrounded ones
        self.round_boxes = self.head.round_boxes and bool(artifacts.environment)
        fallback = config.size or _resolution(artifacts) or metadata_size(metadata) or (DEFAULT_INPUT_SIZE,) * 2
        width = dim(shape[3]) or fallback[0]
        height = dim(shape[2]) or fallback[1]
        self.input_size: tuple[int, int] = (int(width), int(height))
        mean, std = self.head.normalisation(spec)
        self.preprocessor = Preprocessor(config, self.input_size, self.input_dtype, mean=mean, std=std)
        self.use_io_binding = self.provider in _GPU_PROVIDERS
        self.context: HeadContext | None = None
        if isinstance(self.head, TaskHead):  # a task head makes whole predictions (masks, keypoints, classes)
            settings = self.head.configure(spec, artifacts, self.class_names)
            self.context = HeadContext(
                self.model_id,
                self.class_names,
                self.task_type,
                self.input_size,
                settings,
                self.round_boxes,
                ultralytics=not artifacts.environment,
            )

    def parameters(self, **kwargs: Any) -> InferenceParameters:
        """This task's parameters from keyword arguments (``None`` keeps the default); names the
        task does not know raise ``TypeError``."""
        if isinstance(self.head, TaskHead):
            return self.head.parameters_type.from_kwargs(**kwargs)
        return InferenceParameters.from_kwargs(**kwargs)

    # -- stages ------------------------------------------------------------------------------------
    def preprocess(
        self, images: Sequence[np.ndarray], slot: Slot | None = None
    ) -> tuple[np.ndarray, list[ResizeGeometry]]:
        """BGR images into one ``[B, 3, H, W]`` tensor (``slot``'s reusable buffer, or this thread's)."""
        buffers = None
        if slot is not None:
            buffers = slot.state.get("preprocess")
            if buffers is None:
                buffers = slot.state["preprocess"] = PreprocessBuffers(self.preprocessor, slot.capacity)
        return self.preprocessor(images, buffers)

    def _run_once(self, batch: np.ndarray, slot: Slot | None) -> list[np.ndarray]:
        if not self.use_io_binding:
            return list(self.session.run(None, {self.input_name: batch}))
        state = slot.state if slot is not None else {}
        binding = state.get("binding")
        if binding is None or binding.session_id != id(self.session):
            binding = DeviceBinding(self.session, self.input_name, self.output_names, binding_device(self.provider))
            binding.session_id = id(self.session)  # type: ignore[attr-defined]
            state["binding"] = binding
        return binding.run(batch)

    def run(self, tensor: np.ndarray, slot: Slot | None = None) -> list[np.ndarray]:
        """The raw network outputs for a batch; a model with a fixed batch size is fed in chunks
        of it (the last one padded). Safe to call from several threads at once."""
        step = self.batch_size or len(tensor)
        parts: list[list[np.ndarray]] = []
        for start in range(0, len(tensor), max(step, 1)):
            chunk = tensor[start : start + step]
            if self.batch_size is not None and len(chunk) < self.batch_size:
                padded = np.zeros((self.batch_size, *tensor.shape[1:]), tensor.dtype)
                padded[: len(chunk)] = chunk
                parts.append([out[: len(chunk)] for out in self._run_once(padded, slot)])
            else:
                parts.append(self._run_once(chunk, slot))
        if len(parts) == 1:
            return parts[0]
        return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]

    def postprocess(
        self, outputs: Sequence[np.ndarray], geometries: Sequence[ResizeGeometry], parameters: InferenceParameters
    ) -> list[FramePrediction]:
        """Decode, filter, suppress and map back to each frame; one typed prediction per image."""
        as_float = [o.astype(np.float32, copy=False) for o in outputs]
        if not self._outputs_checked:
            problem = self.head.problem([list(o.shape) for o in as_float], len(self._all_class_names))
            if problem:
                shapes = [list(o.shape) for o in as_float]
                raise UnsupportedModelOutputError(f"{self.model_id}: {self.head.name} outputs {shapes}: {problem}")
            self._outputs_checked = True
        if isinstance(self.head, TaskHead) and self.context is not None:
            return self.head.predictions(as_float, geometries, parameters, self.context)
        allowed = None
        if parameters.class_filter is not None:
            allowed = np.array([i for i, n in enumerate(self.class_names) if n in parameters.class_filter], np.int64)
        settings = DecodeSettings(
            parameters.confidence, self.input_size, parameters.max_candidates, parameters.max_detections
        )
        results = []
        for index, geometry in enumerate(geometries):
            found = self.head.decode([o[index] for o in as_float], settings)
            results.append(self._prediction(found, geometry, parameters, allowed))
        return results

    def _prediction(
        self, found: Candidates, geometry: ResizeGeometry, parameters: InferenceParameters, allowed: np.ndarray | None
    ) -> FramePrediction:
        boxes, scores, class_ids = found.boxes, found.scores, found.class_ids
        if self._background is not None:
            keep = class_ids != self._background
            boxes, scores, class_ids = boxes[keep], scores[keep], class_ids[keep]
            class_ids = class_ids - (class_ids > self._background)
        if allowed is not None:
            keep = np.isin(class_ids, allowed)
            boxes, scores, class_ids = boxes[keep], scores[keep], class_ids[keep]
        if self.head.nms:
            keep = non_max_suppression(
                boxes,
                scores,
                parameters.iou_threshold,
                None if parameters.class_agnostic_nms else class_ids,
                parameters.max_detections,
            )
        else:
            keep = np.arange(min(len(boxes), max(parameters.max_detections, 0)))
        mapped, inside = boxes_to_frame(boxes[keep], geometry, self.round_boxes)
        detections = Detections(mapped[inside], scores[keep][inside], class_ids[keep][inside])
        return FramePrediction(geometry.frame, self.class_names, self.task_type, detections=detections)

    def __repr__(self) -> str:
        return (
            f"OnnxModel({self.model_id!r}, {self.head.name}, classes={len(self.class_names)}, "
            f"input={self.input_size}, batch={self.batch_size or 'dynamic'}, provider={self.provider})"
        )


ObjectDetectionModel = OnnxModel
"""The name of earlier versions."""
