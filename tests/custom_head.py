"""A head defined outside framepipe, as a plugin would: boxes as corner fractions ``[B, N, 4 + nc]``
(x1, y1, x2, y2 as fractions of the input, then class scores). Importing this module registers it;
nothing in framepipe names it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from framepipe.models.heads import Candidates, Head, OutputSpec, register_head
from framepipe.models.heads.base import NO, POSSIBLE, DecodeSettings, Shape, best_class, dim, matches


class CornerFractionsHead(Head):
    name = "corner-fractions"
    layout = "corner fractions [B, N, 4+nc]"
    families = ("corners",)
    round_boxes = False

    def fits(self, spec: OutputSpec) -> int:
        if len(spec.shapes) != 1 or len(spec.shapes[0]) != 3 or spec.model_type is None:
            return NO  # only with a model_type that says so: the shapes alone are YOLOv5's
        expected = None if spec.num_classes is None else 4 + spec.num_classes
        return POSSIBLE if matches(spec.shapes[0][2], expected) else NO

    def num_classes(self, shapes: Sequence[Shape]) -> int | None:
        channels = dim(shapes[0][2]) if len(shapes) == 1 and len(shapes[0]) == 3 else None
        return channels - 4 if channels else None

    def decode(self, outputs: Sequence[np.ndarray], settings: DecodeSettings) -> Candidates:
        pred = outputs[0]
        class_ids, scores = best_class(pred[:, 4:])
        keep = np.flatnonzero(scores >= settings.confidence)
        scale = np.array([settings.input_size[0], settings.input_size[1]] * 2, np.float32)
        return Candidates((pred[keep, :4] * scale).astype(np.float32), scores[keep], class_ids[keep].astype(np.int64))


register_head(CornerFractionsHead())
