"""The model interface every task implements, so that the executor, the manager, pipelines and
servers treat every model alike.

A model turns BGR ``uint8`` frames into typed predictions in three stages (``preprocess`` ->
``run`` -> ``postprocess``), so that a batching executor can place them on different threads;
``predict`` and ``infer`` go through the model's executor (``executor``), which batches the
frames of every caller of the model.

Example:
    >>> from framepipe.models import Model, get_model
    >>> isinstance(get_model("framepipe-shapes/1"), Model)
    True
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, overload, runtime_checkable

import numpy as np

from framepipe.models.params import InferenceParameters
from framepipe.predictions import FramePrediction

if TYPE_CHECKING:
    from framepipe.artifacts import ModelArtifacts
    from framepipe.models.executor import BatchingExecutor, Slot


@runtime_checkable
class Model(Protocol):
    """What the executor, the manager and the pipeline need of a model.

    ``artifacts`` are its files; ``provider`` the execution provider it runs on;
    ``task_type`` is Roboflow's ``project_task_type``; ``input_size`` is (width, height);
    ``batch_size`` the fixed batch of the network (``None``: dynamic); ``max_batch_size`` the most
    frames the executor puts in one run.
    """

    model_id: str
    artifacts: ModelArtifacts
    provider: str
    task_type: str
    class_names: list[str]
    input_size: tuple[int, int]
    batch_size: int | None
    max_batch_size: int

    def parameters(self, **kwargs: Any) -> InferenceParameters:
        """This task's parameters from keyword arguments (``None``: the default); unknown names raise."""
        ...

    def preprocess(self, images: Sequence[np.ndarray], slot: Slot | None = None) -> tuple[Any, list[Any]]:
        """The network input for a batch (in ``slot``'s buffers when given) and one geometry per image."""
        ...

    def run(self, tensor: Any, slot: Slot | None = None) -> list[np.ndarray]:
        """The raw outputs of a batch (batch axis first)."""
        ...

    def postprocess(
        self, outputs: Sequence[np.ndarray], geometries: Sequence[Any], parameters: InferenceParameters
    ) -> list[FramePrediction]:
        """One typed prediction per image of the batch."""
        ...

    @property
    def executor(self) -> BatchingExecutor:
        """The batching executor every caller of this model goes through."""
        ...

    def predict(self, images: np.ndarray | Sequence[np.ndarray], **parameters: Any) -> Any:
        """Typed predictions: one for an image, a list for a list."""
        ...

    def infer(self, images: np.ndarray | Sequence[np.ndarray], **parameters: Any) -> Any:
        """Roboflow's JSON: a dict for an image, a list for a list."""
        ...


class ExecutorCalls:
    """``executor``, ``predict`` and ``infer`` for a class that has the three stages and
    ``parameters``: every call goes through the model's one batching executor."""

    executor_slots: int | None = None  # None: this process's runtime plan
    _executor: BatchingExecutor | None = None
    _executor_lock = threading.Lock()

    @property
    def executor(self) -> BatchingExecutor:
        """The batching executor of this model (made on first use)."""
        from framepipe.models.executor import BatchingExecutor
        from framepipe.models.session import runtime_plan

        with ExecutorCalls._executor_lock:
            if self._executor is None:
                slots = self.executor_slots or runtime_plan().slots
                self._executor = BatchingExecutor(self, slots=slots)  # type: ignore[arg-type]
            return self._executor

    @overload
    def predict(self, images: np.ndarray, **parameters: Any) -> FramePrediction: ...

    @overload
    def predict(self, images: Sequence[np.ndarray], **parameters: Any) -> list[FramePrediction]: ...

    def predict(
        self, images: np.ndarray | Sequence[np.ndarray], **parameters: Any
    ) -> FramePrediction | list[FramePrediction]:
        """Typed predictions for one BGR image (one ``FramePrediction``) or a list of them (a
        list), through the model's batching executor."""
        single = isinstance(images, np.ndarray) and images.ndim == 3
        batch: list[np.ndarray] = [images] if single else list(images)  # type: ignore[list-item]
        settings = self.parameters(**parameters)  # type: ignore[attr-defined]
        results = self.executor.infer(batch, settings) if batch else []
        return results[0] if single else results

    @overload
    def infer(self, images: np.ndarray, **parameters: Any) -> dict[str, Any]: ...

    @overload
    def infer(self, images: Sequence[np.ndarray], **parameters: Any) -> list[dict[str, Any]]: ...

    def infer(
        self, images: np.ndarray | Sequence[np.ndarray], **parameters: Any
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """Roboflow's JSON for one BGR image (a dict) or a list of them (a list)."""
        found = self.predict(images, **parameters)
        return [p.to_roboflow() for p in found] if isinstance(found, list) else found.to_roboflow()
