"""Version ``0`` of any dataset is a stub model, as in Roboflow Inference: no files, no network, and
every image gets a well-formed answer with no predictions. Useful to build and test a pipeline
before a model is trained.

``StubModel`` has the same calls as framepipe's detector (``infer``, and the ``preprocess`` /
``run`` / ``postprocess`` stages a pipeline uses), with nothing to run.

Example:
    >>> import numpy as np
    >>> from framepipe.artifacts.stub import StubModel
    >>> from framepipe.artifacts import resolve_model
    >>> model = StubModel(resolve_model("my-dataset/0"))
    >>> model.infer(np.zeros((360, 640, 3), np.uint8))
    {'image': {'width': 640, 'height': 360}, 'predictions': []}
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from framepipe.artifacts.folder import ModelArtifacts
from framepipe.artifacts.model_id import ModelRef

STUB_VERSION_ID = "0"
STUB_MODEL_TYPE = {"project_task_type": "object-detection", "model_type": "stub"}


def stub_artifacts(ref: ModelRef) -> ModelArtifacts:
    """The artifacts of the stub model ``<dataset>/0``: no files, ``is_stub=True``."""
    return ModelArtifacts(
        model_id=ref.model_id,
        weights_path=Path(),
        folder=Path(),
        environment={"PREPROCESSING": {}},
        class_names=[],
        model_type={**STUB_MODEL_TYPE, "model_id": ref.model_id},
        is_stub=True,
    )


class StubModel:
    """A model that answers every image with ``{"image": {"width", "height"}, "predictions": []}``."""

    provider = "none"
    batch_size: int | None = None

    def __init__(self, artifacts: ModelArtifacts) -> None:
        self.model_id = artifacts.model_id
        self.artifacts = artifacts
        self.class_names: list[str] = []
        self.task_type = str((artifacts.model_type or STUB_MODEL_TYPE)["project_task_type"])

    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """The (width, height) of each image; there is nothing else to prepare."""
        sizes = []
        for image in images:
            if image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"expected a BGR image of shape (H, W, 3), got {image.shape}")
            sizes.append((int(image.shape[1]), int(image.shape[0])))
        return np.asarray(sizes, np.int64).reshape(-1, 2), sizes

    def run(self, tensor: np.ndarray) -> np.ndarray:
        """Nothing to run: the input comes back."""
        return tensor

    def postprocess(
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
