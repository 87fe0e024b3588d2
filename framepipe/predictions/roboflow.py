"""Roboflow's prediction JSON, made from typed predictions at the edges.

``to_roboflow`` gives the dict a Roboflow model returns (``{"image": {"width", "height"},
"predictions": [{"x", "y", "width", "height", "confidence", "class", "class_id",
"detection_id"}]}``, box centre and size in frame pixels, ``tracker_id`` on tracked boxes).
Other tasks add to each prediction what Roboflow's do: ``points: [{x, y}]`` and
``mask_format: "polygon"`` (or ``rle: {size, counts}`` and ``mask_format: "rle"``) for instance
segmentation, ``keypoints: [{x, y, confidence, class_id, class}]`` for keypoint detection; a
classification is ``{predictions: [{class, class_id, confidence}], top, confidence}`` (sorted,
those below the request's ``confidence`` left out), multi-label ``{predictions: {name:
{confidence, class_id}}, predicted_classes}``.
``RoboflowPrediction`` is that dict, still carrying the typed prediction it was made from
(``.prediction``), so that framepipe's own sinks skip the JSON round trip; it is a plain
``dict`` to everybody else (``json.dumps`` writes the same bytes).

Example:
    >>> import json
    >>> import numpy as np
    >>> from framepipe.predictions import Detections, FramePrediction, to_payload
    >>> found = Detections(np.array([[10, 20, 50, 60]], np.float32), np.array([0.9], np.float32), np.array([0]))
    >>> payload = to_payload(FramePrediction((640, 360), ["cat"], detections=found))
    >>> payload["predictions"][0]["x"], payload.prediction.image_size, isinstance(payload, dict)
    (30.0, (640, 360), True)
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from framepipe.predictions.types import FramePrediction


def detection_ids(count: int) -> list[str]:
    """``count`` random version-4 UUID strings, made from one ``os.urandom`` call (``uuid4()``
    per detection cost 90 % of building the JSON)."""
    if count <= 0:
        return []
    raw = np.frombuffer(os.urandom(16 * count), np.uint8).reshape(count, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.tobytes().hex()
    return [
        "-".join(
            (text[i : i + 8], text[i + 8 : i + 12], text[i + 12 : i + 16], text[i + 16 : i + 20], text[i + 20 : i + 32])
        )
        for i in range(0, 32 * count, 32)
    ]


def _detection_items(prediction: FramePrediction) -> list[dict[str, Any]]:
    found = prediction.detections
    if found is None or not len(found):
        return []
    ids = detection_ids(len(found))
    tracker = found.tracker_id.tolist() if found.tracker_id is not None else None
    items = []
    for index, ((x1, y1, x2, y2), score, class_id) in enumerate(
        zip(found.xyxy.tolist(), found.confidence.tolist(), found.class_id.tolist(), strict=True)
    ):
        item: dict[str, Any] = {
            "x": (x1 + x2) / 2,
            "y": (y1 + y2) / 2,
            "width": x2 - x1,
            "height": y2 - y1,
            "confidence": round(score, 4),
            "class": prediction.class_name(class_id),
            "class_id": class_id,
            "detection_id": ids[index],
        }
        if tracker is not None and tracker[index] >= 0:
            item["tracker_id"] = tracker[index]
        items.append(item)
    if found.keypoints is not None:
        _add_keypoints(prediction, items)
    if found.rle is not None:
        for item, rle in zip(items, found.rle, strict=True):
            item["rle"] = rle
            item["mask_format"] = "rle"
    elif found.polygons is not None:
        for item, polygon in zip(items, found.polygons, strict=True):
            item["points"] = [{"x": x, "y": y} for x, y in polygon.tolist()]
            item["mask_format"] = "polygon"
    return items


def _add_keypoints(prediction: FramePrediction, items: list[dict[str, Any]]) -> None:
    """Roboflow's ``keypoints: [{x, y, confidence, class_id, class}]`` per object: ``class_id``
    is the keypoint's index, ``class`` its name; a class whose names are fewer than the model's
    keypoints gets only those (Ultralytics pads single-class layouts with zeros)."""
    found = prediction.detections
    assert found is not None and found.keypoints is not None
    names = prediction.keypoint_names or {}
    for item, class_id, points in zip(items, found.class_id.tolist(), found.keypoints.tolist(), strict=True):
        named = names.get(class_id)
        count = len(points) if named is None else min(len(named), len(points))
        item["keypoints"] = [
            {
                "x": x,
                "y": y,
                "confidence": round(score, 4),
                "class_id": index,
                "class": str(named[index]) if named is not None else str(index),
            }
            for index, (x, y, score) in enumerate(points[:count])
        ]


def _classification_fields(prediction: FramePrediction) -> dict[str, Any]:
    found = prediction.classification
    assert found is not None
    scores = found.confidence.tolist()
    if found.multilabel:
        named = {prediction.class_name(i): {"confidence": round(s, 4), "class_id": i} for i, s in enumerate(scores)}
        chosen = [prediction.class_name(i) for i in found.predicted]
        return {"predictions": named, "predicted_classes": chosen}
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    items = [
        {"class": prediction.class_name(i), "class_id": i, "confidence": round(scores[i], 4)}
        for i in order
        if scores[i] >= found.threshold
    ]
    top = order[0] if order else 0
    return {
        "predictions": items,
        "top": prediction.class_name(top) if order else "",
        "confidence": round(scores[top], 4) if order else 0.0,
    }


def to_roboflow(prediction: FramePrediction) -> dict[str, Any]:
    """Roboflow's JSON for one frame."""
    width, height = prediction.image_size
    body: dict[str, Any] = {"image": {"width": width, "height": height}}
    if prediction.classification is not None:
        body.update(_classification_fields(prediction))
    else:
        body["predictions"] = _detection_items(prediction)
    body.update(prediction.extra)
    return body


class RoboflowPrediction(dict[str, Any]):
    """Roboflow's JSON for a frame (a ``dict``), with the typed prediction it came from in
    ``prediction``."""

    __slots__ = ("prediction",)

    def __init__(self, prediction: FramePrediction) -> None:
        super().__init__(to_roboflow(prediction))
        self.prediction = prediction

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (e.g. to another process) as a plain dict
        return (dict, (dict(self),))


def to_payload(prediction: Any) -> Any:
    """What ``on_prediction`` gets for a model's output: a ``RoboflowPrediction`` for a typed
    prediction, anything else (a custom handler's result, ``None``) unchanged."""
    if isinstance(prediction, FramePrediction):
        return RoboflowPrediction(prediction)
    return prediction


def typed(prediction: Any) -> FramePrediction | None:
    """The typed prediction behind an ``on_prediction`` payload, if it has one."""
    if isinstance(prediction, FramePrediction):
        return prediction
    return getattr(prediction, "prediction", None) if isinstance(prediction, dict) else None
