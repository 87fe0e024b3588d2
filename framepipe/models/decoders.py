"""Turning raw detector outputs into candidate boxes, one decoder per output layout.

Each decoder returns, per image, ``Candidates``: ``xyxy`` boxes in model-input pixels, their
scores and class ids, already filtered by confidence and cut to ``max_candidates``; NMS and the
mapping back to the frame come after.

Example:
    >>> import numpy as np
    >>> from framepipe.models.decoders import decode_yolov8
    >>> raw = np.zeros((1, 6, 3), np.float32)           # 2 classes, 3 anchors
    >>> raw[0, :, 1] = [50, 40, 20, 10, 0.1, 0.9]       # cx, cy, w, h, scores
    >>> found = decode_yolov8(raw, confidence=0.5)[0]
    >>> found.boxes.tolist(), found.class_ids.tolist()
    ([[40.0, 35.0, 60.0, 45.0]], [1])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Candidates:
    """Boxes of one image before NMS."""

    boxes: np.ndarray  # (K, 4) xyxy, model-input pixels
    scores: np.ndarray  # (K,)
    class_ids: np.ndarray  # (K,) int

    @staticmethod
    def empty() -> Candidates:
        return Candidates(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64))


def _top(scores: np.ndarray, keep: np.ndarray, limit: int) -> np.ndarray:
    if limit > 0 and keep.size > limit:
        keep = keep[np.argpartition(-scores[keep], limit - 1)[:limit]]
    return keep


def decode_yolov8(output: np.ndarray, confidence: float, max_candidates: int = 3000) -> list[Candidates]:
    """YOLOv8/v9/v11/v12 layout ``[B, 4 + nc, N]``: centre x, y, width, height, then class scores.

    The score of a box is its best class score (no objectness), kept when ``>= confidence``.
    """
    if output.ndim != 3 or output.shape[1] < 5:
        raise ValueError(f"expected [batch, 4 + classes, anchors], got shape {list(output.shape)}")
    results = []
    for pred in output:
        class_scores = pred[4:]
        class_ids = class_scores.argmax(axis=0)
        scores = np.take_along_axis(class_scores, class_ids[None], axis=0)[0]
        keep = _top(scores, np.flatnonzero(scores >= confidence), max_candidates)
        if keep.size == 0:
            results.append(Candidates.empty())
            continue
        cx, cy, w, h = pred[0, keep], pred[1, keep], pred[2, keep], pred[3, keep]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
        results.append(Candidates(boxes, scores[keep].astype(np.float32), class_ids[keep].astype(np.int64)))
    return results
