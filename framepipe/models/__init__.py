"""Models: one interface for every task (``Model``), ONNX sessions on the best provider, the
preprocessing of ``environment.json``, one head per output layout, NMS, a batching executor per
model and a process-wide table of loaded models.

Example:
    >>> import numpy as np
    >>> from framepipe.models import get_model
    >>> model = get_model("framepipe-shapes/1")
    >>> model.infer([np.zeros((240, 320, 3), np.uint8)] * 2)[1]["image"]
    {'width': 320, 'height': 240}
"""

from framepipe.models.base import Model
from framepipe.models.executor import BatchingExecutor
from framepipe.models.loader import DEFAULT_MANAGER, acquire_model, get_model, load_model
from framepipe.models.manager import ModelLease, ModelManager
from framepipe.models.onnx_model import ObjectDetectionModel, OnnxModel
from framepipe.models.params import InferenceParameters
from framepipe.models.session import configure_runtime, create_session, runtime_plan
from framepipe.models.stub import StubModel

__all__ = [
    "DEFAULT_MANAGER",
    "BatchingExecutor",
    "InferenceParameters",
    "Model",
    "ModelLease",
    "ModelManager",
    "ObjectDetectionModel",
    "OnnxModel",
    "StubModel",
    "acquire_model",
    "configure_runtime",
    "create_session",
    "get_model",
    "load_model",
    "runtime_plan",
]
