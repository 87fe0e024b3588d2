"""YOLOv5 outputs: ``[B, N, 5 + nc]``, score = objectness x best class score (YOLOv5's own rule).

Example:
    >>> import numpy as np
    >>> from framepipe.models.heads.base import DecodeSettings
    >>> from framepipe.models.heads.yolov5 import YOLOv5Head
    >>> raw = np.array([[32, 32, 8, 8, 0.5, 0.2, 0.9]], np.float32)
    >>> found = YOLOv5Head().decode([raw], DecodeSettings(0.4, (64, 64)))
    >>> found.class_ids.tolist(), round(float(found.scores[0]), 2)
    ([1], 0.45)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from framepipe.models.heads.base import (
    NO,
    Candidates,
    DecodeSettings,
    DenseHead,
    OutputSpec,
    best_class,
    cxcywh_to_xyxy,
    top_k,
)
from framepipe.models.heads.registry import register_head


class YOLOv5Head(DenseHead):
    name = "yolov5"
    layout = "YOLOv5 [B, N, 5+nc]"
    families = ("yolov5",)
    priority = 20
    channel_axis = 2
    values = 5

    def fits(self, spec: OutputSpec) -> int:
        if spec.task is not None:  # Ultralytics' exports use the YOLOv8 layout
            return NO
        return self.dense_fit(spec)

    def decode(self, outputs: Sequence[np.ndarray], settings: DecodeSettings) -> Candidates:
        pred = outputs[0]
        bound = pred[:, 4] * pred[:, 5:].max(axis=1)  # objectness x best class: the score, before argmax
        keep = top_k(bound, np.flatnonzero(bound >= settings.confidence), settings.max_candidates)
        if not keep.size:
            return Candidates.empty()
        class_ids, _ = best_class(pred[keep, 5:])
        boxes = cxcywh_to_xyxy(pred[keep, 0], pred[keep, 1], pred[keep, 2], pred[keep, 3])
        return Candidates(boxes, bound[keep].astype(np.float32), class_ids.astype(np.int64))


register_head(YOLOv5Head())
