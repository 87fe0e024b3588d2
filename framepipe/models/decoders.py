"""Turning raw detector outputs into candidate boxes, one decoder per output layout.

| decoder | outputs | score | NMS |
|---|---|---|---|
| ``yolov5`` | ``[B, N, 5 + nc]``: cx, cy, w, h, objectness, class scores | objectness x best class | yes |
| ``yolov8`` (v8, v9, v11, v12) | ``[B, 4 + nc, N]``: cx, cy, w, h, class scores | best class | yes |
| ``end-to-end`` (YOLOv10, YOLO26, ...) | ``[B, K, 6]``: x1, y1, x2, y2, score, class | as given | no |
| ``yolo-nas`` | boxes ``[B, N, 4]`` xyxy, scores ``[B, N, nc]`` | best class | yes |
| ``rf-detr`` | boxes ``[B, Q, 4]`` normalised cx, cy, w, h; logits ``[B, Q, nc]`` | sigmoid, top-k | no |

Each decoder returns, per image, ``Candidates``: ``xyxy`` boxes in model-input pixels, scores and
class ids, filtered by confidence and cut to ``max_candidates``.

Example:
    >>> import numpy as np
    >>> from framepipe.models.decoders import decode_yolov8
    >>> raw = np.zeros((1, 6, 3), np.float32)           # 2 classes, 3 anchors
    >>> raw[0, :, 1] = [50, 40, 20, 10, 0.1, 0.9]       # cx, cy, w, h, scores
    >>> found = decode_yolov8([raw], confidence=0.5, input_size=(64, 64))[0]
    >>> found.boxes.tolist(), found.class_ids.tolist()
    ([[40.0, 35.0, 60.0, 45.0]], [1])
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from framepipe.errors import UnsupportedModelOutputError

logger = logging.getLogger("framepipe.models")


@dataclass(frozen=True)
class Candidates:
    """Boxes of one image before NMS."""

    boxes: np.ndarray  # (K, 4) xyxy, model-input pixels
    scores: np.ndarray  # (K,)
    class_ids: np.ndarray  # (K,) int

    @staticmethod
    def empty() -> Candidates:
        return Candidates(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64))


DecodeFunction = Callable[..., list[Candidates]]


def _top(scores: np.ndarray, keep: np.ndarray, limit: int) -> np.ndarray:
    if 0 < limit < keep.size:
        keep = keep[np.argpartition(-scores[keep], limit - 1)[:limit]]
    return keep


def _cxcywh_to_xyxy(cx: np.ndarray, cy: np.ndarray, w: np.ndarray, h: np.ndarray) -> np.ndarray:
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)


def _best_class(class_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best class id and score along the last axis."""
    class_ids = class_scores.argmax(axis=-1)
    return class_ids, np.take_along_axis(class_scores, class_ids[..., None], axis=-1)[..., 0]


def _pick(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, keep: np.ndarray) -> Candidates:
    return Candidates(
        boxes[keep].reshape(-1, 4).astype(np.float32), scores[keep].astype(np.float32), class_ids[keep].astype(np.int64)
    )


def decode_yolov8(
    outputs: Sequence[np.ndarray],
    confidence: float,
    input_size: tuple[int, int],
    max_candidates: int = 3000,
    max_detections: int = 300,
) -> list[Candidates]:
    """``[B, 4 + nc, N]``; a box scores its best class (no objectness), kept when ``>= confidence``."""
    results = []
    for pred in outputs[0]:
        class_ids, scores = _best_class(pred[4:].T)
        keep = _top(scores, np.flatnonzero(scores >= confidence), max_candidates)
        boxes = _cxcywh_to_xyxy(pred[0, keep], pred[1, keep], pred[2, keep], pred[3, keep])
        results.append(Candidates(boxes, scores[keep].astype(np.float32), class_ids[keep].astype(np.int64)))
    return results


def decode_yolov5(
    outputs: Sequence[np.ndarray],
    confidence: float,
    input_size: tuple[int, int],
    max_candidates: int = 3000,
    max_detections: int = 300,
) -> list[Candidates]:
    """``[B, N, 5 + nc]``; score = objectness x best class score (YOLOv5's own rule)."""
    results = []
    for pred in outputs[0]:
        class_ids, class_scores = _best_class(pred[:, 5:])
        scores = pred[:, 4] * class_scores
        keep = _top(scores, np.flatnonzero(scores >= confidence), max_candidates)
        boxes = _cxcywh_to_xyxy(pred[keep, 0], pred[keep, 1], pred[keep, 2], pred[keep, 3])
        results.append(Candidates(boxes, scores[keep].astype(np.float32), class_ids[keep].astype(np.int64)))
    return results


def decode_end_to_end(
    outputs: Sequence[np.ndarray],
    confidence: float,
    input_size: tuple[int, int],
    max_candidates: int = 3000,
    max_detections: int = 300,
) -> list[Candidates]:
    """``[B, K, 6]`` rows ``x1, y1, x2, y2, score, class``, already suppressed; kept when ``score > confidence``."""
    results = []
    for pred in outputs[0]:
        keep = np.flatnonzero(pred[:, 4] > confidence)
        keep = keep[np.argsort(-pred[keep, 4], kind="stable")]
        results.append(_pick(pred[:, :4], pred[:, 4], pred[:, 5].round(), keep))
    return results


def decode_yolo_nas(
    outputs: Sequence[np.ndarray],
    confidence: float,
    input_size: tuple[int, int],
    max_candidates: int = 3000,
    max_detections: int = 300,
) -> list[Candidates]:
    """boxes ``[B, N, 4]`` xyxy and scores ``[B, N, nc]``; a box scores its best class."""
    results = []
    for boxes, class_scores in zip(outputs[0], outputs[1], strict=True):
        class_ids, scores = _best_class(class_scores)
        keep = _top(scores, np.flatnonzero(scores >= confidence), max_candidates)
        results.append(_pick(boxes, scores, class_ids, keep))
    return results


def decode_rfdetr(
    outputs: Sequence[np.ndarray],
    confidence: float,
    input_size: tuple[int, int],
    max_candidates: int = 3000,
    max_detections: int = 300,
) -> list[Candidates]:
    """boxes ``[B, Q, 4]`` normalised cx, cy, w, h and class logits ``[B, Q, nc]``.

    Scores are sigmoids; the ``max_detections`` best (query, class) pairs over all queries and
    classes are taken (one query may give several classes), kept when ``> confidence``. No NMS.
    """
    width, height = input_size
    results = []
    for boxes, logits in zip(outputs[0], outputs[1], strict=True):
        scores = 1.0 / (1.0 + np.exp(-logits.astype(np.float32)))
        flat = scores.ravel()
        k = min(max_detections, flat.size)
        best = np.argpartition(-flat, k - 1)[:k] if k < flat.size else np.arange(flat.size)
        best = best[np.argsort(-flat[best], kind="stable")]
        best = best[flat[best] > confidence]
        queries, class_ids = np.divmod(best, scores.shape[1])
        chosen = boxes[queries].astype(np.float32)
        xyxy = _cxcywh_to_xyxy(chosen[:, 0] * width, chosen[:, 1] * height, chosen[:, 2] * width, chosen[:, 3] * height)
        results.append(Candidates(xyxy, flat[best].astype(np.float32), class_ids.astype(np.int64)))
    return results


@dataclass(frozen=True)
class Decoder:
    """A decoder and what it needs: ``nms`` tells whether NMS follows."""

    name: str
    decode: DecodeFunction
    nms: bool

    def __call__(
        self,
        outputs: Sequence[np.ndarray],
        confidence: float,
        input_size: tuple[int, int],
        max_candidates: int,
        max_detections: int,
    ) -> list[Candidates]:
        return self.decode(outputs, confidence, input_size, max_candidates, max_detections)


DECODERS: dict[str, Decoder] = {
    "yolov5": Decoder("yolov5", decode_yolov5, nms=True),
    "yolov8": Decoder("yolov8", decode_yolov8, nms=True),
    "end-to-end": Decoder("end-to-end", decode_end_to_end, nms=False),
    "yolo-nas": Decoder("yolo-nas", decode_yolo_nas, nms=True),
    "rf-detr": Decoder("rf-detr", decode_rfdetr, nms=False),
}

_FAMILIES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("yolov5",), "yolov5"),
    (("yolov10", "yolo26", "yolov26"), "end-to-end"),
    (("yolov8", "yolov9", "yolov11", "yolo11", "yolov12", "yolo12"), "yolov8"),
    (("yolo_nas", "yolo-nas", "yolonas"), "yolo-nas"),
    (("rfdetr", "rf-detr"), "rf-detr"),
)


def decoder_for_model_type(model_type: str) -> str | None:
    """The decoder name for a Roboflow ``model_type`` (``yolov8n``, ``rfdetr-base``, ...), or ``None``."""
    lowered = model_type.lower()
    for prefixes, name in _FAMILIES:
        if lowered.startswith(prefixes):
            return name
    return None


Shape = Sequence[int | str | None]


def _dim(value: int | str | None) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def _fits(name: str, shapes: Sequence[Shape], num_classes: int | None) -> bool:
    """Whether ``shapes`` can be the outputs of decoder ``name`` (unknown axes fit anything)."""

    def eq(value: int | str | None, expected: int | None) -> bool:
        return expected is None or _dim(value) is None or _dim(value) == expected

    if name in ("yolov8", "yolov5", "end-to-end"):
        if len(shapes) != 1 or len(shapes[0]) != 3:
            return False
        _, a, b = shapes[0]
        if name == "yolov8":
            return eq(a, None if num_classes is None else 4 + num_classes) and (_dim(a) or 5) >= 5
        if name == "yolov5":
            return eq(b, None if num_classes is None else 5 + num_classes) and (_dim(b) or 6) >= 6
        return (_dim(b) or 6) == 6
    if len(shapes) != 2 or any(len(s) != 3 for s in shapes):
        return False
    boxes, scores = shapes
    return _dim(boxes[2]) == 4 and eq(scores[2], num_classes) and eq(boxes[1], _dim(scores[1]))


def choose_decoder(
    shapes: Sequence[Shape],
    output_names: list[str],
    num_classes: int | None,
    model_type: str | None = None,
    metadata_task: str | None = None,
) -> tuple[Decoder, str]:
    """Pick the decoder for a model, and say why.

    In order: the ``model_type`` (from ``model_type.json``) when it names a known family; else
    the output shapes, when exactly one layout fits them. Shapes that fit no layout, or a
    ``model_type`` whose layout they contradict, raise ``UnsupportedModelOutputError`` with the
    shapes found.
    """
    shown = ", ".join(f"{n} {list(s)}" for n, s in zip(output_names, shapes, strict=True))
    if model_type:
        name = decoder_for_model_type(model_type)
        if name is not None:
            if not _fits(name, shapes, None):  # the class count is checked by the caller, with a clearer message
                raise UnsupportedModelOutputError(
                    f"model_type {model_type!r} means the {name} layout, but the model's outputs are: {shown}"
                )
            return DECODERS[name], f"model_type {model_type!r}"
    if len(shapes) == 2:
        lowered = [n.lower() for n in output_names]
        if "dets" in lowered and "labels" in lowered and _fits("rf-detr", shapes, num_classes):
            order = [lowered.index("dets"), lowered.index("labels")]
            if order != [0, 1]:
                raise UnsupportedModelOutputError(f"expected outputs (dets, labels) in that order, got: {shown}")
            return DECODERS["rf-detr"], "outputs named dets and labels (RF-DETR)"
        if _fits("yolo-nas", shapes, num_classes):
            raise UnsupportedModelOutputError(
                f"outputs {shown} could be YOLO-NAS (pixel xyxy boxes) or RF-DETR (normalised boxes): add a "
                "model_type.json that says which"
            )
    candidates = [n for n in ("yolov8", "yolov5", "end-to-end") if _fits(n, shapes, num_classes)]
    if not candidates and num_classes is not None:  # wrong class names: let the caller say so
        candidates = [n for n in ("yolov8", "yolov5", "end-to-end") if _fits(n, shapes, None)]
    if len(candidates) > 1 and len(shapes) == 1:
        _, a, b = shapes[0]
        # YOLOv8 puts the few channels before the many anchors, YOLOv5 after them
        if _dim(a) is not None and _dim(b) is not None:
            candidates = ["end-to-end"] if _dim(b) == 6 else ["yolov8"] if _dim(a) < _dim(b) else ["yolov5"]  # type: ignore[operator]
    if len(candidates) == 1:
        reason = f"output shapes {shown}" + (f" (exported for task {metadata_task!r})" if metadata_task else "")
        return DECODERS[candidates[0]], reason
    if not candidates:
        raise UnsupportedModelOutputError(
            f"no decoder knows these outputs: {shown}; framepipe reads YOLOv5 [B, N, 5+nc], YOLOv8-12 [B, 4+nc, N], "
            "end-to-end [B, K, 6], YOLO-NAS ([B, N, 4], [B, N, nc]) and RF-DETR ([B, Q, 4], [B, Q, nc])"
        )
    raise UnsupportedModelOutputError(f"outputs {shown} fit several layouts ({candidates}): add a model_type.json")
