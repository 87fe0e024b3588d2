"""YOLOv8-family outputs (v8, v9, v11, v12 and Ultralytics exports): ``[B, 4 + nc, N]``, a box
scores its best class (no objectness).

The best score of each anchor is taken first (a max over contiguous rows), and the class argmax
only for the anchors above the threshold: a frame with nothing in it costs one pass.

Example:
    >>> import numpy as np
    >>> from framepipe.models.heads.base import DecodeSettings
    >>> from framepipe.models.heads.yolov8 import YOLOv8Head
    >>> raw = np.zeros((6, 4), np.float32)
    >>> raw[:, 2] = [50, 40, 20, 10, 0.2, 0.7]
    >>> YOLOv8Head().decode([raw], DecodeSettings(0.5, (64, 64))).scores.tolist()
    [0.699999988079071]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from framepipe.models.heads.base import (
    CERTAIN,
    NO,
    POSSIBLE,
    Candidates,
    DecodeSettings,
    DenseHead,
    OutputSpec,
    cxcywh_to_xyxy,
    dim,
    top_k,
)
from framepipe.models.heads.registry import register_head


class YOLOv8Head(DenseHead):
    name = "yolov8"
    layout = "YOLOv8-12 [B, 4+nc, N]"
    families = ("yolov8", "yolov9", "yolov11", "yolo11", "yolov12", "yolo12")
    priority = 10

    def fits(self, spec: OutputSpec) -> int:
        fit = self.dense_fit(spec)
        both_fixed = fit != NO and dim(spec.shapes[0][1]) is not None and dim(spec.shapes[0][2]) is not None
        if fit == POSSIBLE and not both_fixed and spec.task == "detect" and not spec.end_to_end:
            return CERTAIN  # Ultralytics writes this layout for every detector it exports without NMS
        return fit

    def decode(self, outputs: Sequence[np.ndarray], settings: DecodeSettings) -> Candidates:
        pred = outputs[0]
        class_scores = pred[4:]
        scores = class_scores.max(axis=0)
        keep = top_k(scores, np.flatnonzero(scores >= settings.confidence), settings.max_candidates)
        if not keep.size:
            return Candidates.empty()
        class_ids = class_scores[:, keep].argmax(axis=0)
        boxes = cxcywh_to_xyxy(pred[0, keep], pred[1, keep], pred[2, keep], pred[3, keep])
        return Candidates(boxes, scores[keep].astype(np.float32), class_ids.astype(np.int64))


register_head(YOLOv8Head())
