"""Quality of each task's predictions against a demo clip's exact ground truth.

- ``detect``: box precision and recall (``evaluate.match_frame``).
- ``segment``: box precision and recall, and the mean mask IoU over the objects found (the
  predicted polygon filled at frame size against the shape's visible area, exact to the pixel).
- ``pose``: box precision and recall, and PCK@0.1: of the visible vertices of the objects found,
  the share predicted within 10 % of the object's box size (its longer side). A vertex is visible
  when it lies in the frame and no later shape covers it; circles have no keypoints.
- ``classify``: top-1 accuracy over frames that hold exactly one object.

Objects less than half visible are "difficult" for every task (see ``evaluate``).

Example:
    >>> import numpy as np
    >>> from framepipe.demo.scenes import Shape, render
    >>> shape = Shape(1, 50.0, 40.0, 20.0, 0.3, (0, 0, 255))
    >>> _, truth = render(np.zeros((80, 100, 3), np.uint8), [shape])
    >>> scorer = make_scorer("classify")
    >>> scorer.add({"top": "square", "confidence": 0.9}, truth, [shape])
    >>> scorer.figures()
    {'top1': 1.0}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from framepipe.demo.evaluate import Score, match_frame, prediction_arrays
from framepipe.demo.scenes import CLASS_NAMES, GroundTruth, Shape, id_map, instance_masks, keypoints

TASKS = ("detect", "segment", "classify", "pose")
"""The demo's tasks, ``framepipe demo --task``."""

PCK_FRACTION = 0.1


@dataclass
class DetectScorer:
    """Box precision and recall."""

    boxes: Score = field(default_factory=Score)

    def _match(self, prediction: dict[str, Any], truth: GroundTruth) -> list[tuple[int, int]]:
        return match_frame(*prediction_arrays(prediction), truth, self.boxes)

    def add(self, prediction: dict[str, Any], truth: GroundTruth, shapes: list[Shape]) -> None:
        self._match(prediction, truth)

    def figures(self) -> dict[str, float]:
        return {"precision": self.boxes.precision, "recall": self.boxes.recall}


def polygon_mask(points: list[dict[str, float]], size: tuple[int, int]) -> np.ndarray:
    """A Roboflow polygon (``[{x, y}]``, pixel centres) filled into a ``(height, width)`` mask."""
    mask = np.zeros((size[1], size[0]), np.uint8)
    if points:
        outline = np.array([[p["x"], p["y"]] for p in points], np.float64)
        cv2.fillPoly(mask, [np.round(outline * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    return mask.astype(bool)


@dataclass
class SegmentScorer(DetectScorer):
    """Box precision and recall, and mask IoU of each object found."""

    ious: list[float] = field(default_factory=list)

    def add(self, prediction: dict[str, Any], truth: GroundTruth, shapes: list[Shape]) -> None:
        hits = self._match(prediction, truth)
        if not hits:
            return
        size = (int(prediction["image"]["width"]), int(prediction["image"]["height"]))
        masks = instance_masks(shapes, size)
        items = prediction["predictions"]
        for found, index in hits:
            predicted = polygon_mask(items[found].get("points", []), size)
            union = int((predicted | masks[index]).sum())
            self.ious.append(int((predicted & masks[index]).sum()) / union if union else 0.0)

    def figures(self) -> dict[str, float]:
        return {**super().figures(), "mask_iou": float(np.mean(self.ious)) if self.ious else 0.0}


def visible_vertices(shapes: list[Shape], size: tuple[int, int]) -> list[np.ndarray]:
    """For each shape, which of its ``keypoints`` are visible (in the frame, not covered)."""
    ids = id_map(shapes, size)
    flags = []
    for index, shape in enumerate(shapes):
        points = keypoints(shape)
        # a step towards the centre: the vertex pixel itself may be the outline's last one
        inner = points + (np.array([shape.x, shape.y]) - points) * min(1.5 / max(shape.radius, 1e-6), 0.5)
        col, row = np.floor(inner[:, 0]).astype(int), np.floor(inner[:, 1]).astype(int)
        inside = (points[:, 0] >= 0) & (points[:, 0] < size[0]) & (points[:, 1] >= 0) & (points[:, 1] < size[1])
        seen = np.zeros(len(points), bool)
        seen[inside] = ids[row[inside].clip(0, size[1] - 1), col[inside].clip(0, size[0] - 1)] == index + 1
        flags.append(seen)
    return flags


@dataclass
class PoseScorer(DetectScorer):
    """Box precision and recall, and PCK@0.1 of the visible vertices of each object found."""

    correct: int = 0
    counted: int = 0

    def add(self, prediction: dict[str, Any], truth: GroundTruth, shapes: list[Shape]) -> None:
        hits = self._match(prediction, truth)
        if not hits:
            return
        size = (int(prediction["image"]["width"]), int(prediction["image"]["height"]))
        visible = visible_vertices(shapes, size)
        items = prediction["predictions"]
        for found, index in hits:
            expected = keypoints(shapes[index])
            x1, y1, x2, y2 = shapes[index].box()
            tolerance = PCK_FRACTION * max(x2 - x1, y2 - y1)
            given = items[found].get("keypoints", [])
            for k in np.flatnonzero(visible[index]):
                self.counted += 1
                if k < len(given) and given[k]["confidence"] > 0:
                    distance = np.hypot(given[k]["x"] - expected[k, 0], given[k]["y"] - expected[k, 1])
                    self.correct += int(distance <= tolerance)

    def figures(self) -> dict[str, float]:
        return {**super().figures(), "pck": self.correct / self.counted if self.counted else 0.0}


@dataclass
class ClassifyScorer:
    """Top-1 accuracy over single-object frames."""

    correct: int = 0
    counted: int = 0

    def add(self, prediction: dict[str, Any], truth: GroundTruth, shapes: list[Shape]) -> None:
        if len(truth.class_ids) != 1:
            return
        self.counted += 1
        self.correct += int(prediction.get("top") == CLASS_NAMES[int(truth.class_ids[0])])

    def figures(self) -> dict[str, float]:
        return {"top1": self.correct / self.counted if self.counted else 0.0}


Scorer = DetectScorer | ClassifyScorer


def make_scorer(task: str) -> Scorer:
    """The scorer of ``task`` (one of ``TASKS``)."""
    scorers: dict[str, type[DetectScorer] | type[ClassifyScorer]] = {
        "detect": DetectScorer,
        "segment": SegmentScorer,
        "pose": PoseScorer,
        "classify": ClassifyScorer,
    }
    if task not in scorers:
        raise ValueError(f"unknown demo task {task!r}; known: {', '.join(TASKS)}")
    return scorers[task]()
