"""ONNX detection models: sessions on the best provider, preprocessing from ``environment.json``,
decoders for each output layout, NMS, and a process-wide model cache.

Example:
    >>> import numpy as np
    >>> from framepipe.models import get_model
    >>> model = get_model("framepipe-shapes/1")
    >>> model.infer([np.zeros((240, 320, 3), np.uint8)] * 2)[1]["image"]
    {'width': 320, 'height': 240}
"""

from framepipe.models.detector import InferenceParameters, ObjectDetectionModel
from framepipe.models.loader import get_model, load_model
from framepipe.models.manager import DEFAULT_MANAGER, ModelManager
from framepipe.models.session import create_session
from framepipe.models.stub import StubModel

__all__ = [
    "DEFAULT_MANAGER",
    "InferenceParameters",
    "ModelManager",
    "ObjectDetectionModel",
    "StubModel",
    "create_session",
    "get_model",
    "load_model",
]
