"""The stub model: version ``0`` of any dataset, as in Roboflow Inference. No files, no network;
every image gets an empty, well-formed prediction of the model's task (``project_task_type`` of
its ``model_type``): no boxes for detection, instance segmentation and keypoints, and for
classification ``{"predictions": [], "top": "", "confidence": 0.0}``. Useful to build and test a
pipeline before a model is trained. Parameters are those of the task.

Example:
    >>> import numpy as np
    >>> from framepipe.models import get_model
    >>> get_model("my-dataset/0").infer(np.zeros((360, 640, 3), np.uint8))
    {'image': {'width': 640, 'height': 360}, 'predictions': []}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from framepipe.artifacts import ModelArtifacts
from framepipe.artifacts.stub import STUB_MODEL_TYPE
from framepipe.errors import ModelArtifactError
from framepipe.models.base import ExecutorCalls
from framepipe.models.executor import Slot
from framepipe.models.params import PARAMETERS_BY_TASK, InferenceParameters
from framepipe.predictions import Classification, Detections, FramePrediction


class StubModel(ExecutorCalls):
    """A ``Model`` that answers every image with its task's empty prediction; it runs nothing."""

    executor_slots = 1

    def __init__(self, artifacts: ModelArtifacts) -> None:
        self.model_id = artifacts.model_id
        self.artifacts = artifacts
        self.provider = "none"
        self.class_names: list[str] = []
        self.task_type = str((artifacts.model_type or STUB_MODEL_TYPE)["project_task_type"])
        if self.task_type not in PARAMETERS_BY_TASK:
            raise ModelArtifactError(
                f"stub model {self.model_id!r} is a {self.task_type!r} model; "
                f"framepipe runs {', '.join(PARAMETERS_BY_TASK)}"
            )
        self.input_size = (0, 0)
        self.batch_size: int | None = None
        self.max_batch_size = 64

    def parameters(self, **kwargs: Any) -> InferenceParameters:
        """Parameters are checked as a real model's of the task and then ignored."""
        return PARAMETERS_BY_TASK[self.task_type].from_kwargs(**kwargs)

    def preprocess(self, images: Sequence[np.ndarray], slot: Slot | None = None) -> tuple[np.ndarray, list[Any]]:
        """The (width, height) of each image; there is nothing else to prepare."""
        sizes = []
        for image in images:
            if image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"expected a BGR image of shape (H, W, 3), got {image.shape}")
            sizes.append((int(image.shape[1]), int(image.shape[0])))
        return np.asarray(sizes, np.int64).reshape(-1, 2), sizes

    def run(self, tensor: np.ndarray, slot: Slot | None = None) -> list[np.ndarray]:
        """Nothing to run: the input comes back."""
        return [tensor]

    def postprocess(
        self, outputs: Sequence[np.ndarray], geometries: Sequence[Any], parameters: InferenceParameters
    ) -> list[FramePrediction]:
        """One empty prediction of the task per image."""
        if self.task_type == "classification":
            empty = Classification(np.zeros((0,), np.float32), threshold=parameters.confidence)
            return [FramePrediction((int(w), int(h)), [], self.task_type, classification=empty) for w, h in geometries]
        return [
            FramePrediction((int(w), int(h)), [], self.task_type, detections=Detections.empty()) for w, h in geometries
        ]

    def __repr__(self) -> str:
        return f"StubModel({self.model_id!r})"
