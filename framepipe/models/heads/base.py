"""What a head is: the decoder of one output layout, and the facts about outputs it judges by.

A head says how well it fits a model's outputs (``fits``: 0 no, 1 possible, 2 certain), how many
classes it sees in them, whether real outputs break its layout (``problem``), and decodes the
outputs of one image into ``Candidates`` (boxes in model-input pixels, before NMS). A
``TaskHead`` (segmentation, keypoints, classification) makes whole predictions instead; the
helpers at the end (``suppress``, ``boxes_to_frame``) serve those whose candidates carry
columns through NMS.

Example:
    >>> from framepipe.models.heads.base import OutputSpec
    >>> spec = OutputSpec([[1, 84, 8400]], ["output0"], num_classes=80)
    >>> spec.shown
    'output0 [1, 84, 8400]'
"""

from __future__ import annotations

import ast
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from framepipe.models.nms import non_max_suppression
from framepipe.models.params import InferenceParameters
from framepipe.predictions import FramePrediction

if TYPE_CHECKING:
    from framepipe.artifacts import ModelArtifacts
    from framepipe.models.preprocess import ResizeGeometry

Shape = Sequence[int | str | None]

NO, POSSIBLE, CERTAIN = 0, 1, 2


def dim(value: Any) -> int | None:
    """A positive fixed axis length, or ``None`` for a symbolic or unknown one."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def matches(value: Any, expected: int | None) -> bool:
    """Whether an axis can have length ``expected`` (unknown axes and expectations fit anything)."""
    return expected is None or dim(value) is None or dim(value) == expected


def literal(raw: str | None) -> Any:
    """An ONNX metadata value written as a Python literal (Ultralytics' ``names``, ``imgsz``)."""
    if not raw:
        return None
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


@dataclass(frozen=True)
class OutputSpec:
    """What is known of a model before it runs: its output ``shapes`` and ``names``, the class
    count from its class names (``None`` when it has none), Roboflow's ``model_type`` and the
    ONNX metadata (Ultralytics writes ``task``, ``end2end``, ``names``, ``imgsz``, ``kpt_shape``)."""

    shapes: Sequence[Shape]
    names: Sequence[str]
    num_classes: int | None = None
    model_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    task_type: str | None = None
    """Roboflow's ``project_task_type`` (``model_type.json``), when the model has one."""

    @property
    def shown(self) -> str:
        """The outputs as an error message shows them."""
        return ", ".join(f"{n} {list(s)}" for n, s in zip(self.names, self.shapes, strict=True))

    @property
    def task(self) -> str | None:
        """Ultralytics' exported task (``detect``, ``segment``, ``classify``, ``pose``, ``obb``)."""
        return self.metadata.get("task")

    @property
    def end_to_end(self) -> bool:
        """Whether Ultralytics exported the model with NMS inside (``end2end``)."""
        return literal(self.metadata.get("end2end")) is True

    @property
    def project_task(self) -> str | None:
        """The Roboflow task the model is for: ``task_type``, else Ultralytics' ``task`` mapped
        to Roboflow's name, else ``None`` (unknown)."""
        return self.task_type or ULTRALYTICS_TASKS.get(self.task or "")

    def without_classes(self) -> OutputSpec:
        """The same outputs with the class count unknown."""
        return OutputSpec(self.shapes, self.names, None, self.model_type, self.metadata, self.task_type)


ULTRALYTICS_TASKS = {
    "detect": "object-detection",
    "segment": "instance-segmentation",
    "classify": "classification",
    "pose": "keypoint-detection",
}
"""Ultralytics' exported ``task`` and Roboflow's ``project_task_type`` for it."""


@dataclass(frozen=True)
class DecodeSettings:
    """What a decode needs besides the outputs: the ``confidence`` threshold, the model's
    ``input_size`` (width, height), and the most candidates (before NMS) and detections to keep."""

    confidence: float
    input_size: tuple[int, int]
    max_candidates: int = 3000
    max_detections: int = 300


@dataclass(frozen=True)
class Candidates:
    """Boxes of one image before NMS: ``boxes`` ``(K, 4)`` xyxy in model-input pixels, ``scores``
    ``(K,)`` and ``class_ids`` ``(K,)``; ``extra`` ``(K, E)`` holds what a task carries through
    NMS with each box (mask coefficients, keypoint triplets), or is ``None``."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    extra: np.ndarray | None = None

    @staticmethod
    def empty(extra_columns: int | None = None) -> Candidates:
        extra = None if extra_columns is None else np.zeros((0, extra_columns), np.float32)
        return Candidates(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64), extra)

    def __getitem__(self, index: np.ndarray) -> Candidates:
        """The candidates chosen by an index array or a boolean mask."""
        extra = None if self.extra is None else self.extra[index]
        return Candidates(self.boxes[index], self.scores[index], self.class_ids[index], extra)


class Head(ABC):
    """The decoder of one output layout. Subclasses set ``name``, ``layout`` (for messages),
    ``families`` (``model_type`` prefixes that mean this layout) and ``nms``."""

    name: ClassVar[str]
    layout: ClassVar[str]
    task: ClassVar[str] = "object-detection"  # Roboflow's project_task_type of the layout
    families: ClassVar[tuple[str, ...]] = ()
    nms: ClassVar[bool] = True
    round_boxes: ClassVar[bool] = True  # as Roboflow: YOLO boxes in whole pixels
    mean: ClassVar[tuple[float, float, float] | None] = None  # input normalisation (RGB, 0..1 scale)
    std: ClassVar[tuple[float, float, float] | None] = None
    priority: ClassVar[int] = 0  # registry order; ties in fit are errors whatever the order

    def normalisation(self, spec: OutputSpec) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
        """The input ``(mean, std)`` for a model of ``spec`` (RGB, 0..1 scale; ``None``: none)."""
        return self.mean, self.std

    def claims(self, model_type: str) -> bool:
        """Whether a Roboflow ``model_type`` (``yolov8n``, ``rfdetr-base``, ...) means this layout."""
        return model_type.lower().startswith(self.families) if self.families else False

    @abstractmethod
    def fits(self, spec: OutputSpec) -> int:
        """``NO``, ``POSSIBLE`` (unknown axes would allow it) or ``CERTAIN``."""

    def num_classes(self, shapes: Sequence[Shape]) -> int | None:
        """The class count the outputs show, when their axes are fixed."""
        return None

    def problem(self, shapes: Sequence[Shape], num_classes: int) -> str | None:
        """What is wrong with real output shapes for this layout, or ``None``."""
        found = self.num_classes(shapes)
        if found is not None and found != num_classes:
            return f"{found} classes in the outputs but {num_classes} class names"
        return None

    @abstractmethod
    def decode(self, outputs: Sequence[np.ndarray], settings: DecodeSettings) -> Candidates:
        """The candidates of ONE image; ``outputs`` are that image's slices (no batch axis)."""


class DenseHead(Head):
    """A head of one output ``[B, a, b]`` with a value per anchor: ``channel_axis`` (1 or 2) holds
    ``values`` box values plus one score per class, the other axis the anchors."""

    channel_axis: ClassVar[int] = 1
    values: ClassVar[int] = 4

    def dense_fit(self, spec: OutputSpec) -> int:
        """The fit by shapes alone: ``CERTAIN`` when both axes are fixed and the channels are the
        fewer, ``POSSIBLE`` when axes are unknown or the anchors are the fewer."""
        if not one_rank3(spec):
            return NO
        channels, anchors = spec.shapes[0][self.channel_axis], spec.shapes[0][3 - self.channel_axis]
        expected = None if spec.num_classes is None else self.values + spec.num_classes
        if not matches(channels, expected) or (dim(channels) or self.values + 1) < self.values + 1:
            return NO
        fixed_channels, fixed_anchors = dim(channels), dim(anchors)
        if fixed_channels is not None and fixed_anchors is not None:
            return CERTAIN if fixed_channels < fixed_anchors else POSSIBLE
        return POSSIBLE

    def num_classes(self, shapes: Sequence[Shape]) -> int | None:
        channels = dim(shapes[0][self.channel_axis]) if len(shapes) == 1 and len(shapes[0]) == 3 else None
        return channels - self.values if channels else None

    def problem(self, shapes: Sequence[Shape], num_classes: int) -> str | None:
        if len(shapes) != 1 or len(shapes[0]) != 3:
            return "expected one output of rank 3"
        return super().problem(shapes, num_classes)


def top_k(scores: np.ndarray, keep: np.ndarray, limit: int) -> np.ndarray:
    """``keep`` cut to the ``limit`` best scores (any order)."""
    if 0 < limit < keep.size:
        keep = keep[np.argpartition(-scores[keep], limit - 1)[:limit]]
    return keep


def channels_first_candidates(
    pred: np.ndarray, num_classes: int, values: int, confidence: float, max_candidates: int
) -> Candidates:
    """The boxes of one image's ``[4 + nc + values, N]`` output (YOLOv8's layout with ``values``
    more channels per anchor: mask coefficients, keypoints), those channels as ``extra``. Each
    anchor's best score first, the class argmax only where it passes."""
    class_scores = pred[4 : 4 + num_classes]
    scores = class_scores.max(axis=0)
    keep = top_k(scores, np.flatnonzero(scores >= confidence), max_candidates)
    if not keep.size:
        return Candidates.empty(values)
    class_ids = class_scores[:, keep].argmax(axis=0).astype(np.int64)
    boxes = cxcywh_to_xyxy(pred[0, keep], pred[1, keep], pred[2, keep], pred[3, keep])
    extra = pred[4 + num_classes : 4 + num_classes + values, keep].T.astype(np.float32)
    return Candidates(boxes, scores[keep].astype(np.float32), class_ids, extra)


def cxcywh_to_xyxy(cx: np.ndarray, cy: np.ndarray, w: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Centre and size columns into ``(K, 4)`` xyxy float32."""
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32).reshape(-1, 4)


def best_class(class_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best class id and score along the last axis."""
    class_ids = class_scores.argmax(axis=-1)
    return class_ids, np.take_along_axis(class_scores, class_ids[..., None], axis=-1)[..., 0]


def one_rank3(spec: OutputSpec) -> bool:
    """One output of rank 3 (``[B, a, b]``)."""
    return len(spec.shapes) == 1 and len(spec.shapes[0]) == 3


# -- heads of tasks other than boxes alone -------------------------------------------------------


@dataclass(frozen=True)
class HeadContext:
    """What a task head knows of its model: ``model_id``, ``class_names``, Roboflow's ``task``,
    the ``input_size`` (width, height), the ``settings`` its ``configure`` returned, whether
    boxes are rounded to whole pixels (Roboflow's models; not a bare Ultralytics export) and
    whether the model is a bare Ultralytics export, decoded as Ultralytics' ``predict`` does."""

    model_id: str
    class_names: list[str]
    task: str
    input_size: tuple[int, int]
    settings: dict[str, Any] = field(default_factory=dict)
    round_boxes: bool = True
    ultralytics: bool = False


class TaskHead(Head):
    """A head that makes the frame's typed prediction itself (masks, keypoints, class scores): it
    declares its ``task`` and ``parameters_type``, reads what else it needs from the model's files
    once (``configure``) and turns a batch of outputs into one prediction per image."""

    parameters_type: ClassVar[type[InferenceParameters]] = InferenceParameters

    def configure(self, spec: OutputSpec, artifacts: ModelArtifacts, class_names: list[str]) -> dict[str, Any]:
        """Read and check what this head needs from the model's files (``ModelArtifactError``)."""
        return {}

    @abstractmethod
    def predictions(
        self,
        outputs: Sequence[np.ndarray],
        geometries: Sequence[ResizeGeometry],
        parameters: InferenceParameters,
        context: HeadContext,
    ) -> list[FramePrediction]:
        """One prediction per image of the batch (``outputs`` with their batch axis)."""


def suppress(found: Candidates, parameters: InferenceParameters, allowed: np.ndarray | None = None) -> Candidates:
    """``found`` after the class filter and NMS, best first, at most ``max_detections``."""
    if allowed is not None:
        found = found[np.isin(found.class_ids, allowed)]
    keep = non_max_suppression(
        found.boxes,
        found.scores,
        parameters.iou_threshold,
        None if parameters.class_agnostic_nms else found.class_ids,
        parameters.max_detections,
    )
    return found[keep]


def allowed_ids(class_names: Sequence[str], parameters: InferenceParameters) -> np.ndarray | None:
    """The class ids the request's ``class_filter`` keeps (``None``: all)."""
    if parameters.class_filter is None:
        return None
    return np.array([i for i, n in enumerate(class_names) if n in parameters.class_filter], np.int64)


def boxes_to_frame(boxes: np.ndarray, geometry: ResizeGeometry, round_boxes: bool) -> tuple[np.ndarray, np.ndarray]:
    """Boxes from model-input pixels to frame pixels (whole pixels when ``round_boxes``, as
    Roboflow's models give them), and which of them are not wholly in the padding (a bool mask)."""
    mapped = geometry.to_source(boxes)
    if round_boxes:
        mapped = np.round(mapped)
    return mapped, (mapped[:, 2] > mapped[:, 0]) & (mapped[:, 3] > mapped[:, 1])
