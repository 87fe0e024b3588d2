"""Typed predictions: numpy columns per frame, made by the models and read by tracking and sinks.

Roboflow's JSON is made from them at the edges (``to_roboflow``), and supervision's types without a
JSON round trip (``to_supervision``).

Example:
    >>> import numpy as np
    >>> from framepipe.predictions import Detections, FramePrediction
    >>> found = Detections(np.array([[10, 20, 50, 60]], np.float32), np.array([0.9], np.float32), np.array([1]))
    >>> prediction = FramePrediction((640, 360), ["cat", "dog"], detections=found)
    >>> prediction.to_roboflow()["predictions"][0]["class"]
    'dog'
"""

from framepipe.predictions.roboflow import RoboflowPrediction, detection_ids, to_payload
from framepipe.predictions.types import Classification, Detections, FramePrediction

__all__ = [
    "Classification",
    "Detections",
    "FramePrediction",
    "RoboflowPrediction",
    "detection_ids",
    "to_payload",
]
