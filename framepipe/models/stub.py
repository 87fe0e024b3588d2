"""The stub model: version ``0`` of any dataset, as in Roboflow Inference. No files, no network;
every image gets ``{"image": {"width", "height"}, "predictions": []}``. Useful to build and test
a pipeline before a model is trained.

Example:
    >>> import numpy as np
    >>> from framepipe.models import get_model
    >>> get_model("my-dataset/0").infer(np.zeros((360, 640, 3), np.uint8))
    {'image': {'width': 640, 'height': 360}, 'predictions': []}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

import numpy as np

from framepipe.artifacts import ModelArtifacts
from framepipe.artifacts.stub import STUB_MODEL_TYPE
from framepipe.models.decoders import Candidates, Decoder
from framepipe.models.detector import ObjectDetectionModel


def _nothing(outputs: Any, confidence: float, input_size: Any, *limits: int) -> list[Candidates]:
    return [Candidates.empty() for _ in outputs[0]]


class StubModel(ObjectDetectionModel):
    """A model that answers every image with ``{"image": {"width", "height"}, "predictions": []}``;
    it has the detector's calls and attributes, with nothing to run."""

    def __init__(self, artifacts: ModelArtifacts) -> None:  # no session, no files: nothing of the parent's
        self.model_id = artifacts.model_id
        self.artifacts = artifacts
        self.session = None
        self.provider = "none"
        self.class_names: list[str] = []
        self.task_type = str((artifacts.model_type or STUB_MODEL_TYPE)["project_task_type"])
        self.input_size = (0, 0)
        self.batch_size = None
        self.decoder = Decoder("stub", _nothing, nms=False)
        self.use_io_binding = False

    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[tuple[int, int]]]:  # type: ignore[override]
        """The (width, height) of each image; there is nothing else to prepare."""
        sizes = []
        for image in images:
            if image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"expected a BGR image of shape (H, W, 3), got {image.shape}")
            sizes.append((int(image.shape[1]), int(image.shape[0])))
        return np.asarray(sizes, np.int64).reshape(-1, 2), sizes

    def run(self, tensor: np.ndarray) -> np.ndarray:  # type: ignore[override]
        """Nothing to run: the input comes back."""
        return tensor

    def postprocess(  # type: ignore[override]
        self, output: np.ndarray, geometries: Sequence[tuple[int, int]], parameters: Any = None
    ) -> list[dict[str, Any]]:
        """One empty answer per image."""
        return [{"image": {"width": w, "height": h}, "predictions": []} for w, h in geometries]

    @overload
    def infer(self, images: np.ndarray, **parameters: Any) -> dict[str, Any]: ...

    @overload
    def infer(self, images: Sequence[np.ndarray], **parameters: Any) -> list[dict[str, Any]]: ...

    def infer(
        self, images: np.ndarray | Sequence[np.ndarray], **parameters: Any
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """One image gives a dict, a list gives a list; parameters are accepted and ignored."""
        single = isinstance(images, np.ndarray) and images.ndim == 3
        batch = [images] if single else list(images)
        tensor, sizes = self.preprocess(batch)  # type: ignore[arg-type]
        results = self.postprocess(self.run(tensor), sizes)
        return results[0] if single else results

    def __repr__(self) -> str:
        return f"StubModel({self.model_id!r})"
