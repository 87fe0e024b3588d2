"""YOLOv5 outputs: ``[B, N, 5 + nc]``, score = objectness x best class score (YOLOv5's own rule).

Example:
    >>> import numpy as np
    >>> from framepipe.models.heads.yolov5 import YOLOv5Head
    >>> raw = np.array([[32, 32, 8, 8, 0.5, 0.2, 0.9]], np.float32)
    >>> found = YOLOv5Head().decode([raw], 0.4, (64, 64), 3000, 300)
    >>> found.class_ids.tolist(), round(float(found.scores[0]), 2)
    ([1], 0.45)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from framepipe.models.heads.base import (
    CERTAIN,
    NO,
    POSSIBLE,
    Candidates,
    Head,
    OutputSpec,
    Shape,
    best_class,
    cxcywh_to_xyxy,
    dim,
    matches,
    one_rank3,
    top_k,
)
from framepipe.models.heads.registry import register_head


class YOLOv5Head(Head):
    name = "yolov5"
    layout = "YOLOv5 [B, N, 5+nc]"
    families = ("yolov5",)
    priority = 20

    def fits(self, spec: OutputSpec) -> int:
        if not one_rank3(spec) or spec.task is not None:  # Ultralytics' exports use the YOLOv8 layout
            return NO
        _, anchors, channels = spec.shapes[0]
        expected = None if spec.num_classes is None else 5 + spec.num_classes
        if not matches(channels, expected) or (dim(channels) or 6) < 6:
            return NO
        if dim(channels) and dim(anchors):
            return CERTAIN if dim(channels) < dim(anchors) else POSSIBLE  # type: ignore[operator]
        return POSSIBLE

    def num_classes(self, shapes: Sequence[Shape]) -> int | None:
        channels = dim(shapes[0][2]) if len(shapes) == 1 and len(shapes[0]) == 3 else None
        return channels - 5 if channels else None

    def problem(self, shapes: Sequence[Shape], num_classes: int) -> str | None:
        if len(shapes) != 1 or len(shapes[0]) != 3:
            return "expected one output of rank 3"
        return super().problem(shapes, num_classes)

    def decode(
        self,
        outputs: Sequence[np.ndarray],
        confidence: float,
        input_size: tuple[int, int],
        max_candidates: int,
        max_detections: int,
    ) -> Candidates:
        pred = outputs[0]
        bound = pred[:, 4] * pred[:, 5:].max(axis=1)  # objectness x best class: the score, before argmax
        keep = top_k(bound, np.flatnonzero(bound >= confidence), max_candidates)
        if not keep.size:
            return Candidates.empty()
        class_ids, _ = best_class(pred[keep, 5:])
        boxes = cxcywh_to_xyxy(pred[keep, 0], pred[keep, 1], pred[keep, 2], pred[keep, 3])
        return Candidates(boxes, bound[keep].astype(np.float32), class_ids.astype(np.int64))


register_head(YOLOv5Head())
