"""End-to-end outputs (YOLOv10, YOLO26, Ultralytics ``end2end`` exports): ``[B, K, 6]`` rows
``x1, y1, x2, y2, score, class``, already suppressed; kept when ``score > confidence``.

Example:
    >>> import numpy as np
    >>> from framepipe.models.heads.base import DecodeSettings
    >>> from framepipe.models.heads.end_to_end import EndToEndHead
    >>> raw = np.array([[1, 2, 30, 40, 0.8, 2], [0, 0, 0, 0, 0.1, 0]], np.float32)
    >>> EndToEndHead().decode([raw], DecodeSettings(0.5, (64, 64))).class_ids.tolist()
    [2]
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
    Head,
    OutputSpec,
    Shape,
    dim,
    one_rank3,
)
from framepipe.models.heads.registry import register_head


class EndToEndHead(Head):
    name = "end-to-end"
    layout = "end-to-end [B, K, 6]"
    families = ("yolov10", "yolo26", "yolov26")
    nms = False
    priority = 30

    def fits(self, spec: OutputSpec) -> int:
        if not one_rank3(spec):
            return NO
        values = dim(spec.shapes[0][2])
        if values is not None:
            return CERTAIN if values == 6 else NO
        if spec.end_to_end:
            return CERTAIN
        return NO if spec.task is not None else POSSIBLE

    def problem(self, shapes: Sequence[Shape], num_classes: int) -> str | None:
        if len(shapes) != 1 or len(shapes[0]) != 3:
            return "expected one output of rank 3"
        if shapes[0][2] != 6:
            return "expected 6 values per detection"
        return None

    def decode(self, outputs: Sequence[np.ndarray], settings: DecodeSettings) -> Candidates:
        pred = outputs[0]
        keep = np.flatnonzero(pred[:, 4] > settings.confidence)
        keep = keep[np.argsort(-pred[keep, 4], kind="stable")]
        return Candidates(
            pred[keep, :4].reshape(-1, 4).astype(np.float32),
            pred[keep, 4].astype(np.float32),
            pred[keep, 5].round().astype(np.int64),
        )


register_head(EndToEndHead())
