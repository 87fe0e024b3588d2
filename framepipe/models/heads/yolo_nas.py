"""YOLO-NAS outputs: boxes ``[B, N, 4]`` xyxy in input pixels and scores ``[B, N, nc]``; a box
scores its best class. The same shapes as RF-DETR's, so without a ``model_type`` the two tie.

Example:
    >>> import numpy as np
    >>> from framepipe.models.heads.base import DecodeSettings
    >>> from framepipe.models.heads.yolo_nas import YOLONASHead
    >>> boxes, scores = np.array([[1, 2, 30, 40]], np.float32), np.array([[0.1, 0.7]], np.float32)
    >>> YOLONASHead().decode([boxes, scores], DecodeSettings(0.5, (64, 64))).class_ids.tolist()
    [1]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from framepipe.models.heads.base import (
    NO,
    POSSIBLE,
    Candidates,
    DecodeSettings,
    Head,
    OutputSpec,
    Shape,
    best_class,
    dim,
    matches,
    top_k,
)
from framepipe.models.heads.registry import register_head


def two_box_outputs(spec: OutputSpec) -> bool:
    """Boxes ``[B, N, 4]`` and scores ``[B, N, nc]`` (nc as the class names say, when known)."""
    if len(spec.shapes) != 2 or any(len(s) != 3 for s in spec.shapes):
        return False
    boxes, scores = spec.shapes
    return dim(boxes[2]) == 4 and matches(scores[2], spec.num_classes) and matches(boxes[1], dim(scores[1]))


class YOLONASHead(Head):
    name = "yolo-nas"
    layout = "YOLO-NAS ([B, N, 4], [B, N, nc])"
    families = ("yolo_nas", "yolo-nas", "yolonas")
    priority = 40

    def fits(self, spec: OutputSpec) -> int:
        return POSSIBLE if two_box_outputs(spec) else NO

    def num_classes(self, shapes: Sequence[Shape]) -> int | None:
        return dim(shapes[1][2]) if len(shapes) == 2 and len(shapes[1]) == 3 else None

    def decode(self, outputs: Sequence[np.ndarray], settings: DecodeSettings) -> Candidates:
        boxes, class_scores = outputs[0], outputs[1]
        class_ids, scores = best_class(class_scores)
        keep = top_k(scores, np.flatnonzero(scores >= settings.confidence), settings.max_candidates)
        return Candidates(
            boxes[keep].reshape(-1, 4).astype(np.float32),
            scores[keep].astype(np.float32),
            class_ids[keep].astype(np.int64),
        )


register_head(YOLONASHead())
