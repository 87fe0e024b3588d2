"""Greedy non-maximum suppression in numpy, per class or class-agnostic.

Overlap is the usual intersection over union (as in supervision and torchvision); a box is dropped
when its IoU with a higher-scored kept box is above ``iou_threshold``.

Example:
    >>> import numpy as np
    >>> from framepipe.models.nms import non_max_suppression
    >>> boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
    >>> non_max_suppression(boxes, np.array([0.9, 0.8, 0.7]), iou_threshold=0.5).tolist()
    [0, 2]
"""

from __future__ import annotations

import numpy as np


def non_max_suppression(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    class_ids: np.ndarray | None = None,
    max_detections: int | None = None,
) -> np.ndarray:
    """Indices of the boxes to keep, best score first.

    ``boxes`` are ``(N, 4)`` xyxy; with ``class_ids`` only boxes of the same class suppress each
    other (boxes are shifted apart per class, so one pass serves every class).
    """
    count = len(boxes)
    if count == 0:
        return np.zeros((0,), np.int64)
    work = boxes.astype(np.float32, copy=True)
    if class_ids is not None:
        span = float(work.max() - min(float(work.min()), 0.0)) + 1.0
        work += (np.asarray(class_ids, np.float32) * span)[:, None]
    x1, y1, x2, y2 = work[:, 0], work[:, 1], work[:, 2], work[:, 3]
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = np.argsort(-np.asarray(scores), kind="stable")
    limit = count if max_detections is None else max(int(max_detections), 0)
    keep: list[int] = []
    while order.size and len(keep) < limit:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        if not rest.size:
            break
        w = np.maximum(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0)
        h = np.maximum(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0)
        inter = w * h
        union = areas[best] + areas[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, np.int64)
