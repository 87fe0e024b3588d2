"""What ``render_boxes`` draws for each task: a ``Scene`` (supervision's detections, key points
and class labels of one frame, made from a typed prediction or from Roboflow's JSON) and the
annotators that draw it.

- object detection: boxes and labels (supervision's ``BoxAnnotator`` and ``LabelAnnotator``);
- instance segmentation: each mask filled translucent in its class's box colour, then boxes and
  labels (``MaskFillAnnotator``: it fills the polygons, so no full-frame masks are made);
- keypoint detection: boxes and labels, then the skeleton's edges (from the model's metadata,
  else supervision's skeleton for that keypoint count) and the keypoints; missing keypoints
  (confidence 0) are not drawn;
- classification: the top class and its confidence, or the predicted classes of a multi-label
  model, in the frame's top-left corner (``ClassLabelAnnotator``).

Example:
    >>> import numpy as np
    >>> from framepipe.sinks.annotators import scene_of
    >>> body = {"image": {"width": 64, "height": 48}, "predictions": [], "top": "cat", "confidence": 0.91}
    >>> scene_of(body).labels
    ['cat 0.91']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import supervision as sv

from framepipe.predictions import FramePrediction
from framepipe.predictions.roboflow import typed
from framepipe.predictions.supervision import to_key_points


@dataclass
class Scene:
    """One frame's things to draw: ``detections`` (``sv.Detections``, with ``mask`` when the JSON
    had ``points``), ``polygons`` (per detection, frame pixels, from a typed prediction),
    ``key_points`` (``sv.KeyPoints``), ``edges`` (per class id, 0-based keypoint pairs) and
    ``labels`` (the class lines of a classification)."""

    detections: sv.Detections = field(default_factory=sv.Detections.empty)
    polygons: list[np.ndarray] | None = None
    key_points: sv.KeyPoints | None = None
    edges: Mapping[int, Sequence[tuple[int, int]]] | None = None
    labels: list[str] = field(default_factory=list)
    task: str = "object-detection"


def classification_labels(body: Mapping[str, Any]) -> list[str]:
    """The lines drawn for a classification JSON: ``"<top> <confidence>"``, or for a multi-label
    one each predicted class with its confidence (``"none"`` when it predicts none)."""
    if "predicted_classes" in body:
        scores = body.get("predictions") or {}
        chosen = body.get("predicted_classes") or []
        lines = [f"{name} {float(scores.get(name, {}).get('confidence', 0.0)):.2f}" for name in chosen]
        return lines or ["none"]
    if "top" in body:
        return [f"{body['top']} {float(body.get('confidence', 0.0)):.2f}"] if body["top"] else []
    return []


def _typed_scene(prediction: FramePrediction) -> Scene:
    if prediction.classification is not None:
        return Scene(labels=classification_labels(prediction.to_roboflow()), task=prediction.task)
    found = prediction.detections
    scene = Scene(detections=prediction.to_supervision(), task=prediction.task)
    if found is not None and len(found):
        scene.polygons = found.polygons if found.mask is None else None
        if found.keypoints is not None:
            scene.key_points = to_key_points(prediction)
            scene.edges = prediction.keypoint_edges
    return scene


def scene_of(prediction: Any) -> Scene:
    """The scene of an ``on_prediction`` payload: a typed prediction (or the dict carrying one),
    else Roboflow's JSON of any task read with supervision."""
    known = typed(prediction)
    if known is not None:
        return _typed_scene(known)
    if "top" in prediction or "predicted_classes" in prediction:
        return Scene(labels=classification_labels(prediction), task="classification")
    items = prediction.get("predictions") or []
    scene = Scene(detections=sv.Detections.from_inference(prediction) if items else sv.Detections.empty())
    if items and all(isinstance(item, dict) and "keypoints" in item for item in items):
        scene.key_points, scene.task = sv.KeyPoints.from_inference(prediction), "keypoint-detection"
    elif scene.detections.mask is not None:
        scene.task = "instance-segmentation"
    return scene


class MaskFillAnnotator:
    """Fills each object's mask (``detections.mask``) or polygon translucent, in the colour
    ``sv.BoxAnnotator`` gives its class, blending the frame only where a mask lies."""

    def __init__(self, opacity: float = 0.5, color: sv.ColorPalette = sv.ColorPalette.DEFAULT) -> None:
        self.opacity = opacity
        self.color = color

    def annotate(
        self, scene: np.ndarray, detections: sv.Detections, polygons: Sequence[np.ndarray] | None = None
    ) -> np.ndarray:
        """``scene`` (BGR, changed in place and returned) with the masks filled."""
        if not len(detections) or (detections.mask is None and not polygons):
            return scene
        overlay = np.zeros_like(scene)
        covered = np.zeros(scene.shape[:2], np.uint8)
        class_ids = detections.class_id if detections.class_id is not None else np.zeros(len(detections), int)
        for index, class_id in enumerate(class_ids.tolist()):
            colour = self.color.by_idx(int(class_id)).as_bgr()
            if detections.mask is not None:
                overlay[detections.mask[index]] = colour
                covered[detections.mask[index]] = 1
            elif polygons is not None and len(polygons[index]) >= 3:
                outline = np.round(polygons[index]).astype(np.int32).reshape(-1, 1, 2)
                cv2.fillPoly(overlay, [outline], colour)
                cv2.fillPoly(covered, [outline], 1)
        inside = covered.astype(bool)
        blended = cv2.addWeighted(scene, 1.0 - self.opacity, overlay, self.opacity, 0.0)
        scene[inside] = blended[inside]
        return scene


class ClassLabelAnnotator:
    """Writes a classification's lines (``classification_labels``) in the top-left corner, white
    on a dark box, scaled to the frame."""

    def annotate(self, scene: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """``scene`` (BGR, changed in place and returned) with ``labels`` written on it."""
        scale = max(0.4, scene.shape[0] / 720.0)
        thickness = max(1, round(scale * 2))
        x, y = round(10 * scale), round(10 * scale)
        for line in labels:
            (width, height), base = cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
            pad = round(6 * scale)
            cv2.rectangle(scene, (x, y), (x + width + 2 * pad, y + height + base + 2 * pad), (32, 32, 32), -1)
            origin = (x + pad, y + pad + height)
            cv2.putText(scene, line, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
            y += height + base + 2 * pad + round(4 * scale)
        return scene


def edge_annotator(edges: Mapping[int, Sequence[tuple[int, int]]] | None, key_points: sv.KeyPoints) -> Any:
    """An ``sv.EdgeAnnotator`` for the model's skeleton (supervision's edges are 1-based), or
    ``None`` when the model has none and supervision knows none for its keypoint count."""
    if edges:
        one_based: dict[int, Sequence[tuple[int, int]]] = {
            c: [(a + 1, b + 1) for a, b in pairs] for c, pairs in edges.items()
        }
        classes = set(key_points.class_id.tolist()) if key_points.class_id is not None else set()
        one_based.update({c: [] for c in classes - set(one_based)})  # classes without a skeleton
        return sv.EdgeAnnotator(color=sv.Color.WHITE, thickness=2, edges=one_based)
    from supervision.key_points.skeletons import SKELETONS_BY_VERTEX_COUNT

    count = key_points.xy.shape[1] if len(key_points) else 0
    return sv.EdgeAnnotator(color=sv.Color.WHITE, thickness=2) if count in SKELETONS_BY_VERTEX_COUNT else None
