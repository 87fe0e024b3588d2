"""YOLACT instance segmentation (Roboflow's ``yolact`` model type): five outputs, in this order,

- ``loc`` ``[B, N, 4]``: box offsets from the priors (YOLOv2's encoding, variances 0.1 and 0.2);
- ``conf`` ``[B, N, nc + 1]``: class scores, the background first;
- ``mask`` ``[B, N, M]``: mask coefficients;
- ``priors`` ``[N, 4]`` (or ``[B, N, 4]``): prior boxes, centre x, y, width, height on the 0..1
  scale of the input;
- ``proto`` ``[B, mh, mw, M]``: prototypes, channels last.

Decoded as Roboflow's ``YOLACT`` model does it (``inference/models/yolact/``): boxes from the
priors, the best non-background class and its score, NMS carrying the coefficients, then the
masks as for YOLOv8-seg (``sigmoid(coefficients @ prototypes)``, padding cut off, cropped to the
box, 0.5). The input is normalised with YOLACT's own pixel mean and standard deviation.
(Roboflow scales the decoded x by the input's height and y by its width, which matters only for
a non-square input; framepipe scales x by the width.)

Example:
    >>> import numpy as np
    >>> from framepipe.models.heads.yolact import decode_priors
    >>> decode_priors(np.zeros((1, 4)), np.array([[0.5, 0.5, 0.2, 0.4]])).round(3).tolist()
    [[0.4, 0.3, 0.6, 0.7]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from framepipe.errors import UnsupportedModelOutputError
from framepipe.models.heads.base import CERTAIN, NO, POSSIBLE, Candidates, HeadContext, OutputSpec, Shape, dim, top_k
from framepipe.models.heads.registry import register_head
from framepipe.models.heads.segmentation import YOLOv8SegmentationHead
from framepipe.models.params import InferenceParameters

if TYPE_CHECKING:
    from framepipe.artifacts import ModelArtifacts

VARIANCES = (0.1, 0.2)
PIXEL_MEAN_RGB = (123.68, 116.78, 103.94)
PIXEL_STD_RGB = (58.40, 57.12, 57.38)


def decode_priors(loc: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """``(N, 4)`` xyxy boxes (0..1 of the input) from offsets ``loc`` and ``priors`` (cx, cy, w, h)."""
    centre = priors[:, :2] + loc[:, :2] * VARIANCES[0] * priors[:, 2:]
    size = priors[:, 2:] * np.exp(np.clip(loc[:, 2:] * VARIANCES[1], -20, 20))
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1)


class YOLACTHead(YOLOv8SegmentationHead):
    name = "yolact"
    layout = "YOLACT loc [B, N, 4], conf [B, N, nc+1], mask [B, N, 32], priors [N, 4], proto [B, mh, mw, 32]"
    families: ClassVar[tuple[str, ...]] = ("yolact",)
    mean = (PIXEL_MEAN_RGB[0] / 255, PIXEL_MEAN_RGB[1] / 255, PIXEL_MEAN_RGB[2] / 255)
    std = (PIXEL_STD_RGB[0] / 255, PIXEL_STD_RGB[1] / 255, PIXEL_STD_RGB[2] / 255)
    priority = 42

    @staticmethod
    def _layout_ok(shapes: Sequence[Shape]) -> bool:
        ranks = [len(s) for s in shapes]
        return len(shapes) == 5 and ranks[:3] == [3, 3, 3] and ranks[3] in (2, 3) and ranks[4] == 4

    def fits(self, spec: OutputSpec) -> int:
        if spec.project_task != self.task:
            return NO
        claimed = bool(spec.model_type and self.claims(spec.model_type))
        if not self._layout_ok(spec.shapes):
            return POSSIBLE if claimed else NO  # chosen anyway, so that configure says what is wrong
        loc, conf = spec.shapes[0], spec.shapes[1]
        if dim(loc[2]) not in (None, 4):
            return NO
        if claimed:
            return CERTAIN
        classes = dim(conf[2])
        return CERTAIN if spec.num_classes is not None and classes == spec.num_classes + 1 else NO

    def num_classes(self, shapes: Sequence[Shape]) -> int | None:
        if not self._layout_ok(shapes):
            return None
        classes = dim(shapes[1][2])
        return classes - 1 if classes is not None else None

    def problem(self, shapes: Sequence[Shape], num_classes: int) -> str | None:
        if not self._layout_ok(shapes):
            return "expected YOLACT's five outputs: loc, conf, mask, priors, proto"
        return None

    def configure(self, spec: OutputSpec, artifacts: ModelArtifacts, class_names: list[str]) -> dict[str, Any]:
        if not self._layout_ok(spec.shapes):
            raise UnsupportedModelOutputError(
                f"{artifacts.weights_path}: a YOLACT model needs five outputs (loc [B, N, 4], conf [B, N, nc+1], "
                f"mask [B, N, 32], priors [N, 4], proto [B, mh, mw, 32]); its outputs are {spec.shown}"
            )
        masks, proto_masks = dim(spec.shapes[2][2]), dim(spec.shapes[4][3])
        if masks is not None and proto_masks is not None and masks != proto_masks:
            raise UnsupportedModelOutputError(
                f"{artifacts.weights_path}: {masks} mask coefficients per box but {proto_masks} prototypes"
            )
        return {"num_classes": len(class_names) or None}

    def image_candidates(
        self, outputs: Sequence[np.ndarray], index: int, context: HeadContext, parameters: InferenceParameters
    ) -> tuple[Candidates, np.ndarray]:
        loc, conf, coefficients, priors, proto = outputs
        prior_boxes = priors if priors.ndim == 2 else priors[index]
        protos = np.ascontiguousarray(np.asarray(proto[index], np.float32).transpose(2, 0, 1))
        class_scores = conf[index][:, 1:]  # the background's column dropped
        scores = class_scores.max(axis=1)
        keep = top_k(scores, np.flatnonzero(scores >= parameters.confidence), parameters.max_candidates)
        if not keep.size:
            return Candidates.empty(protos.shape[0]), protos
        width, height = context.input_size
        boxes = decode_priors(loc[index][keep], prior_boxes[keep]) * np.array([width, height, width, height])
        return (
            Candidates(
                boxes.astype(np.float32),
                scores[keep].astype(np.float32),
                class_scores[keep].argmax(axis=1).astype(np.int64),
                coefficients[index][keep].astype(np.float32),
            ),
            protos,
        )


register_head(YOLACTHead())
