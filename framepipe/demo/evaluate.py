"""Precision and recall of detections against the demo clips' ground truth.

Matching is per frame and per class, greedy by confidence, at an IoU threshold (0.5 by default),
as in PASCAL VOC: objects less than half visible (``visible < min_visible``) are "difficult":
finding one is neither a hit nor a false alarm, and missing one is not a miss.

Example:
    >>> import numpy as np
    >>> from framepipe.demo.evaluate import Score, match_frame
    >>> from framepipe.demo.scenes import GroundTruth
    >>> truth = GroundTruth(np.array([[0, 0, 10, 10]], np.float32), np.array([1]), np.array([1.0], np.float32))
    >>> score = Score()
    >>> match_frame(np.array([[1, 0, 10, 10]], np.float32), np.array([0.9]), np.array([1]), truth, score)
    [(0, 0)]
    >>> score.precision, score.recall
    (1.0, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from framepipe.demo.scenes import GroundTruth


@dataclass
class Score:
    """Running counts; ``precision`` and ``recall`` are 1.0 when nothing was counted."""

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    ignored: int = 0

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        present = self.true_positives + self.false_negatives
        return self.true_positives / present if present else 1.0


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every xyxy box in ``a`` (N, 4) with every one in ``b`` (M, 4)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter, dtype=np.float64), where=union > 0)


def match_frame(
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    truth: GroundTruth,
    score: Score,
    iou_threshold: float = 0.5,
    min_visible: float = 0.5,
) -> list[tuple[int, int]]:
    """Count the hits, false alarms and misses of one frame's detections into ``score``; return
    the hits as ``(detection index, truth index)`` pairs (difficult objects left out)."""
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    taken = np.zeros(len(truth.boxes), bool)
    difficult = truth.visible < min_visible
    overlaps = iou_matrix(np.asarray(boxes, np.float64).reshape(-1, 4), truth.boxes.astype(np.float64))
    hits: list[tuple[int, int]] = []
    for index in order:
        same_class = (truth.class_ids == class_ids[index]) & ~taken
        candidates = np.where(same_class, overlaps[index], -1.0)
        best = int(np.argmax(candidates)) if len(candidates) else -1
        if best >= 0 and candidates[best] >= iou_threshold:
            taken[best] = True
            if difficult[best]:
                score.ignored += 1
            else:
                score.true_positives += 1
                hits.append((int(index), best))
        else:
            score.false_positives += 1
    score.false_negatives += int((~taken & ~difficult).sum())
    return hits


def prediction_arrays(prediction: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(xyxy boxes, confidences, class ids)`` of a Roboflow prediction dict."""
    items = prediction.get("predictions", [])
    boxes = np.array(
        [
            [p["x"] - p["width"] / 2, p["y"] - p["height"] / 2, p["x"] + p["width"] / 2, p["y"] + p["height"] / 2]
            for p in items
        ],
        np.float64,
    ).reshape(-1, 4)
    scores = np.array([p["confidence"] for p in items], np.float64)
    class_ids = np.array([p["class_id"] for p in items], np.int64)
    return boxes, scores, class_ids
