"""The stub model: version ``0`` of any dataset, as in Roboflow Inference. No files, no network;
every image gets an empty, well-formed prediction of the model's task. Useful to build and test a
pipeline before a model is trained.

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
from framepipe.models.base import ExecutorCalls
from framepipe.models.executor import Slot
from framepipe.models.params import InferenceParameters
from framepipe.predictions import Detections, FramePrediction


class StubModel(ExecutorCalls):
    """A ``Model`` that answers every image with no detections; it runs nothing."""

    executor_slots = 1

    def __init__(self, artifacts: ModelArtifacts) -> None:
        self.model_id = artifacts.model_id
        self.artifacts = artifacts
        self.provider = "none"
        self.class_names: list[str] = []
        self.task_type = str((artifacts.model_type or STUB_MODEL_TYPE)["project_task_type"])
        self.input_size = (0, 0)
        self.batch_size: int | None = None
        self.max_batch_size = 64

    def parameters(self, **kwargs: Any) -> InferenceParameters:
        """Parameters are checked as a real model's and then ignored."""
        return InferenceParameters.from_kwargs(**kwargs)

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
        """One empty prediction per image."""
        return [
            FramePrediction((int(w), int(h)), [], self.task_type, detections=Detections.empty()) for w, h in geometries
        ]

    def __repr__(self) -> str:
        return f"StubModel({self.model_id!r})"
