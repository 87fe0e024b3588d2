"""Classification outputs: one score per class, ``[B, nc]`` (YOLOv8-cls, ResNet, ViT).

Roboflow's ``model_type`` picks the input normalisation: ``resnet*`` ImageNet's mean and std,
YOLOv8-cls and ViT 0.5 and 0.5 (Roboflow's defaults); a bare Ultralytics export (no
``environment.json``) is fed RGB / 255 as Ultralytics' own ``predict`` does. ``MULTICLASS`` in
``environment.json`` makes the model multi-label.

Scores become probabilities by this rule, checked on every batch rather than assumed: a
single-label model's outputs are taken as probabilities already when every row is non-negative
and sums to 1 within 1e-3 (the graph ends in a softmax), otherwise softmax is applied; a
multi-label model's outputs are taken as they are when all lie in [0, 1] (the graph ends in a
sigmoid), otherwise the sigmoid is applied.

Example:
    >>> import numpy as np
    >>> from framepipe.models.heads.classification import probabilities
    >>> probabilities(np.array([[0.2, 0.8]], np.float32), multilabel=False).tolist()  # already softmax
    [[0.20000000298023224, 0.800000011920929]]
    >>> probabilities(np.array([[0.0, 0.0]], np.float32), multilabel=False).tolist()  # logits
    [[0.5, 0.5]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from framepipe.errors import ModelArtifactError
from framepipe.models.heads.base import (
    CERTAIN,
    NO,
    Candidates,
    DecodeSettings,
    HeadContext,
    OutputSpec,
    Shape,
    TaskHead,
    dim,
    matches,
)
from framepipe.models.heads.registry import register_head
from framepipe.models.params import InferenceParameters
from framepipe.predictions import Classification, FramePrediction

if TYPE_CHECKING:
    from framepipe.artifacts import ModelArtifacts
    from framepipe.models.preprocess import ResizeGeometry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)
PROBABILITY_TOLERANCE = 1e-3


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def probabilities(scores: np.ndarray, multilabel: bool) -> np.ndarray:
    """Scores ``[B, nc]`` as probabilities, by the rule of the module docstring."""
    scores = scores.astype(np.float32, copy=False)
    if multilabel:
        inside = bool(np.all((scores >= 0) & (scores <= 1)))
        return scores if inside else (1 / (1 + np.exp(-scores))).astype(np.float32)
    sums = scores.sum(axis=-1)
    if scores.size and bool(np.all(scores >= 0)) and bool(np.all(np.abs(sums - 1) <= PROBABILITY_TOLERANCE)):
        return scores
    return _softmax(scores).astype(np.float32)


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes"}
    return bool(value)


class ClassificationHead(TaskHead):
    name = "classification"
    layout = "classification [B, nc]"
    task = "classification"
    families: ClassVar[tuple[str, ...]] = ("yolov8", "yolov11", "yolo11", "vit")
    mean = HALF
    std = HALF
    priority = 60

    def fits(self, spec: OutputSpec) -> int:
        if len(spec.shapes) != 1 or len(spec.shapes[0]) != 2:
            return NO
        return CERTAIN if matches(spec.shapes[0][1], spec.num_classes) else NO

    def normalisation(self, spec: OutputSpec) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
        if spec.model_type is None:  # a bare export: RGB / 255, as Ultralytics' predict
            return None, None
        return self.mean, self.std

    def num_classes(self, shapes: Sequence[Shape]) -> int | None:
        return dim(shapes[0][1]) if len(shapes) == 1 and len(shapes[0]) == 2 else None

    def problem(self, shapes: Sequence[Shape], num_classes: int) -> str | None:
        if len(shapes) != 1 or len(shapes[0]) != 2:
            return "expected one output [batch, classes]"
        return super().problem(shapes, num_classes)

    def configure(self, spec: OutputSpec, artifacts: ModelArtifacts, class_names: list[str]) -> dict[str, Any]:
        multilabel = _flag(artifacts.environment.get("MULTICLASS", False))
        found = self.num_classes(spec.shapes)
        if found is not None and class_names and found != len(class_names):
            raise ModelArtifactError(
                f"{artifacts.weights_path}: the classifier scores {found} classes but {len(class_names)} class names "
                f"were given ({artifacts.folder / 'class_names.txt'})"
            )
        return {"multilabel": multilabel}

    def decode(self, outputs: Sequence[np.ndarray], settings: DecodeSettings) -> Candidates:
        return Candidates.empty()  # a classifier has no boxes; see predictions

    def predictions(
        self,
        outputs: Sequence[np.ndarray],
        geometries: Sequence[ResizeGeometry],
        parameters: InferenceParameters,
        context: HeadContext,
    ) -> list[FramePrediction]:
        multilabel = bool(context.settings.get("multilabel", False))
        scores = probabilities(outputs[0].reshape(len(outputs[0]), -1), multilabel)
        return [
            FramePrediction(
                geometry.frame,
                context.class_names,
                self.task,
                classification=Classification(scores[index], multilabel, parameters.confidence),
            )
            for index, geometry in enumerate(geometries)
        ]


class ResNetClassificationHead(ClassificationHead):
    """ResNet classifiers: the same outputs, ImageNet's normalisation; only by ``model_type``."""

    name = "classification-resnet"
    families = ("resnet",)
    mean = IMAGENET_MEAN
    std = IMAGENET_STD
    priority = 61

    def fits(self, spec: OutputSpec) -> int:
        if not (spec.model_type and self.claims(spec.model_type)):
            return NO
        return super().fits(spec)


register_head(ClassificationHead())
register_head(ResNetClassificationHead())
