"""RF-DETR outputs: boxes ``[B, Q, 4]`` normalised cx, cy, w, h and class logits ``[B, Q, nc]``
(Roboflow names them ``dets`` and ``labels``).

Scores are sigmoids; the ``max_detections`` best (query, class) pairs over all queries and classes
are taken (one query may give several classes), kept when ``> confidence``. No NMS. Inputs are
normalised with ImageNet's mean and std; boxes are not rounded.

Example:
    >>> import numpy as np
    >>> from framepipe.models.heads.base import DecodeSettings
    >>> from framepipe.models.heads.rfdetr import RFDETRHead
    >>> boxes, logits = np.array([[0.5, 0.5, 0.25, 0.5]], np.float32), np.array([[-5.0, 3.0]], np.float32)
    >>> RFDETRHead().decode([boxes, logits], DecodeSettings(0.5, (64, 64))).boxes.tolist()
    [[24.0, 16.0, 40.0, 48.0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from framepipe.errors import UnsupportedModelOutputError
from framepipe.models.heads.base import (
    CERTAIN,
    NO,
    POSSIBLE,
    Candidates,
    DecodeSettings,
    Head,
    OutputSpec,
    Shape,
    cxcywh_to_xyxy,
    dim,
)
from framepipe.models.heads.registry import register_head
from framepipe.models.heads.yolo_nas import two_box_outputs


class RFDETRHead(Head):
    name = "rf-detr"
    layout = "RF-DETR ([B, Q, 4], [B, Q, nc])"
    families = ("rfdetr", "rf-detr")
    nms = False
    round_boxes = False
    mean = (0.485, 0.456, 0.406)
    std = (0.229, 0.224, 0.225)
    priority = 50

    def fits(self, spec: OutputSpec) -> int:
        if not two_box_outputs(spec):
            return NO
        lowered = [n.lower() for n in spec.names]
        if "dets" in lowered and "labels" in lowered:
            if [lowered.index("dets"), lowered.index("labels")] != [0, 1]:
                raise UnsupportedModelOutputError(f"expected outputs (dets, labels) in that order, got: {spec.shown}")
            return CERTAIN
        return POSSIBLE

    def num_classes(self, shapes: Sequence[Shape]) -> int | None:
        return dim(shapes[1][2]) if len(shapes) == 2 and len(shapes[1]) == 3 else None

    def decode(self, outputs: Sequence[np.ndarray], settings: DecodeSettings) -> Candidates:
        width, height = settings.input_size
        boxes, logits = outputs[0], outputs[1]
        scores = 1.0 / (1.0 + np.exp(-logits.astype(np.float32)))
        flat = scores.ravel()
        k = min(settings.max_detections, flat.size)
        if k <= 0:
            return Candidates.empty()
        best = np.argpartition(-flat, k - 1)[:k] if k < flat.size else np.arange(flat.size)
        best = best[np.argsort(-flat[best], kind="stable")]
        best = best[flat[best] > settings.confidence]
        queries, class_ids = np.divmod(best, scores.shape[1])
        chosen = boxes[queries].astype(np.float32)
        xyxy = cxcywh_to_xyxy(chosen[:, 0] * width, chosen[:, 1] * height, chosen[:, 2] * width, chosen[:, 3] * height)
        return Candidates(xyxy, flat[best].astype(np.float32), class_ids.astype(np.int64))


register_head(RFDETRHead())
