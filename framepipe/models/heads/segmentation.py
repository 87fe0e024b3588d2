"""Instance segmentation outputs of YOLOv8/11-seg and YOLOv5-seg: predictions and prototypes.

- YOLOv8/11-seg: predictions ``[B, 4 + nc + M, N]`` (cx, cy, w, h, class scores, ``M`` mask
  coefficients) and prototypes ``[B, M, mh, mw]`` (``M`` is 32 for every Ultralytics model).
- YOLOv5-seg: predictions ``[B, N, 5 + nc + M]`` (with objectness) and the same prototypes.

Masks are decoded as Roboflow does (``inference/core/utils/postprocess.py``): NMS carries each
box's coefficients; ``sigmoid(coefficients @ prototypes)``; the letterbox padding is cropped off
at prototype size; the mask is brought to the decode size of ``mask_decode_mode`` (``accurate``:
the frame's size, ``fast``: prototype size, ``tradeoff``: between, by ``tradeoff_factor``),
cropped to its box and thresholded at 0.5. The JSON outline is the largest outer contour
(``cv2.RETR_EXTERNAL``, the one of most points), scaled to frame pixels; COCO RLE and the
full-frame boolean masks (``keep_masks``) are made at frame size only when asked for.

A bare Ultralytics export (no ``environment.json``) in the default ``accurate`` mode is decoded
as Ultralytics' ``predict`` does it instead (``ultralytics/utils/ops.py``, ``retina_masks=False``):
``coefficients @ prototypes`` cropped at prototype size to the box scaled there and rounded,
bilinear to the input size, ``> 0``; the outline is that mask's largest outer contour mapped back
by ``scale_coords`` (one gain, the unrounded half padding, clipped to the frame), so it equals
``Results.masks.xy`` for a mask of one part (Ultralytics joins the parts of a split mask into one
outline; this keeps the largest, as Roboflow's JSON does); frame-size masks follow its
``scale_masks`` (padding ``round(half -/+ 0.1)`` cut off, bilinear to the frame, ``> 0.5``).

Example:
    >>> import numpy as np
    >>> from framepipe.models.heads.segmentation import decode_size
    >>> decode_size("tradeoff", 0.5, prototype=(160, 90), source=(1280, 720))
    (720, 405)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import cv2
import numpy as np

from framepipe.errors import UnsupportedModelOutputError
from framepipe.models.heads.base import (
    CERTAIN,
    NO,
    POSSIBLE,
    Candidates,
    DecodeSettings,
    HeadContext,
    OutputSpec,
    Shape,
    TaskHead,
    allowed_ids,
    boxes_to_frame,
    channels_first_candidates,
    cxcywh_to_xyxy,
    dim,
    matches,
    suppress,
    top_k,
)
from framepipe.models.heads.registry import register_head
from framepipe.models.params import InferenceParameters, SegmentationParameters
from framepipe.predictions import Detections, FramePrediction
from framepipe.predictions.rle import rle_encode_window

if TYPE_CHECKING:
    from framepipe.artifacts import ModelArtifacts
    from framepipe.models.preprocess import ResizeGeometry

MASK_THRESHOLD = 0.5


def decode_size(mode: str, factor: float, prototype: tuple[int, int], source: tuple[int, int]) -> tuple[int, int]:
    """``(width, height)`` masks are decoded at: the ``source`` size (``accurate``), the cropped
    ``prototype`` size (``fast``), or ``prototype * (1 - factor) + source * factor``."""
    if mode == "accurate":
        return source
    if mode == "fast":
        return prototype
    return (
        max(int(prototype[0] * (1 - factor) + source[0] * factor), 1),
        max(int(prototype[1] * (1 - factor) + source[1] * factor), 1),
    )


def unpadded(protos: np.ndarray, geometry: ResizeGeometry, input_size: tuple[int, int]) -> tuple[slice, slice]:
    """Rows and columns of the prototypes that hold the picture, not the letterbox padding."""
    _, mh, mw = protos.shape
    width, height = input_size
    sx, sy = mw / width, mh / height
    new_w, new_h = geometry.resized_size
    left, top = int(geometry.pad_x * sx), int(geometry.pad_y * sy)
    right = mw - int((width - geometry.pad_x - new_w) * sx)
    bottom = mh - int((height - geometry.pad_y - new_h) * sy)
    return slice(top, max(bottom, top + 1)), slice(left, max(right, left + 1))


def box_window(boxes: np.ndarray, shape: tuple[int, int], scale: tuple[float, float]) -> Iterator[tuple[slice, slice]]:
    """For each box (source pixels), the rows and columns ``r, c`` of a ``shape`` (h, w) mask
    with ``x1 <= c * sx < x2`` (Roboflow's ``crop_mask`` after scaling the box by ``scale``)."""
    height, width = shape
    for x1, y1, x2, y2 in boxes.tolist():
        c0, c1 = int(np.ceil(x1 * scale[0])), int(np.ceil(x2 * scale[0]))
        r0, r1 = int(np.ceil(y1 * scale[1])), int(np.ceil(y2 * scale[1]))
        yield (
            slice(min(max(r0, 0), height), min(max(r1, 0), height)),
            slice(min(max(c0, 0), width), min(max(c1, 0), width)),
        )


def largest_outline(mask: np.ndarray) -> np.ndarray:
    """The largest outer contour (most points) of a boolean mask, ``(P, 2)`` x, y; empty when none."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return np.zeros((0, 2), np.float32)
    best = max(contours, key=len)
    return best.reshape(-1, 2).astype(np.float32)


def resample_window(values: np.ndarray, size: tuple[int, int], rows: slice, cols: slice) -> np.ndarray:
    """The ``rows, cols`` window of ``values`` ``(h0, w0)`` resized to ``size`` (w, h) bilinearly,
    the same pixels ``cv2.resize`` of the whole would give there (centres aligned), without
    resizing the whole."""
    height, width = rows.stop - rows.start, cols.stop - cols.start
    if height <= 0 or width <= 0:
        return np.zeros((max(height, 0), max(width, 0)), np.float32)
    if size == (values.shape[1], values.shape[0]):
        return values[rows, cols]
    fx, fy = values.shape[1] / size[0], values.shape[0] / size[1]
    matrix = np.array([[fx, 0, (cols.start + 0.5) * fx - 0.5], [0, fy, (rows.start + 0.5) * fy - 0.5]], np.float32)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(values, matrix, (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def instance_masks(
    protos: np.ndarray,
    coefficients: np.ndarray,
    boxes: np.ndarray,
    geometry: ResizeGeometry,
    input_size: tuple[int, int],
    parameters: SegmentationParameters,
) -> Iterator[tuple[np.ndarray, np.ndarray, slice, slice]]:
    """For each instance: its probabilities at prototype size (padding cropped), and those of its
    box's window at decode size with the window's rows and columns; ``boxes`` are xyxy in source
    pixels (the part of the frame the model saw). Only box windows are brought to decode size, one
    instance at a time, so 50 instances at 720p never cost 50 frames of memory."""
    rows, cols = unpadded(protos, geometry, input_size)
    region = protos[:, rows, cols]
    count, ph, pw = region.shape
    source = geometry.source_size
    size = decode_size(parameters.mask_decode_mode, parameters.tradeoff_factor, (pw, ph), source)
    flat = np.ascontiguousarray(region).reshape(count, -1)  # contiguous: the product runs in BLAS
    logits = (coefficients @ flat).reshape(-1, ph, pw)  # at prototype size: 50 instances are 3 MB
    probabilities = (1 / (1 + np.exp(-np.clip(logits, -50, 50)))).astype(np.float32)
    windows = box_window(boxes, (size[1], size[0]), (size[0] / source[0], size[1] / source[1]))
    for instance, (box_rows, box_cols) in zip(probabilities, windows, strict=True):
        yield instance, resample_window(instance, size, box_rows, box_cols), box_rows, box_cols


def _support(lo: float, hi: float, ratio: float, limit: int) -> slice:
    """Input pixels whose bilinear sample (ratio ``ratio`` of prototype to input pixels) can
    reach the prototype columns ``[lo, hi)``, with a margin: beyond it the upsampled mask is 0."""
    return slice(max(int(np.floor((lo - 1) / ratio)) - 2, 0), max(min(int(np.ceil((hi + 1) / ratio)) + 2, limit), 0))


def ultralytics_instance_masks(
    protos: np.ndarray, coefficients: np.ndarray, boxes: np.ndarray, input_size: tuple[int, int]
) -> Iterator[tuple[np.ndarray, slice, slice]]:
    """Ultralytics' ``process_mask(..., upsample=True)`` one instance at a time: for each box
    (xyxy, input pixels) its binary mask at input size, as a window with its rows and columns
    (outside the window the mask is empty)."""
    count, mh, mw = protos.shape
    width, height = input_size
    rx, ry = mw / width, mh / height
    logits = (coefficients @ np.ascontiguousarray(protos).reshape(count, -1)).reshape(-1, mh, mw)
    scaled = np.round(boxes * np.array([rx, ry, rx, ry], np.float32)).astype(np.int64)  # torch.round: half to even
    for logit, (x1, y1, x2, y2) in zip(logits, scaled.tolist(), strict=True):
        x1, y1 = max(x1, 0), max(y1, 0)
        cropped = np.zeros((mh, mw), np.float32)
        cropped[y1:y2, x1:x2] = logit[y1:y2, x1:x2]
        rows, cols = _support(y1, y2, ry, height), _support(x1, x2, rx, width)
        yield resample_window(cropped, (width, height), rows, cols) > 0, rows, cols


class _FrameMasks:
    """Each instance's mask at frame size, kept as COCO RLE and/or a full-frame boolean mask
    when the parameters ask for them (``wanted``); the window of each is all that is made."""

    def __init__(self, options: SegmentationParameters, frame: tuple[int, int]) -> None:
        self.rle = options.response_mask_format == "rle"
        self.keep = options.keep_masks
        self.frame = frame
        self.rles: list[dict[str, Any]] = []
        self.masks: list[np.ndarray] = []

    @property
    def wanted(self) -> bool:
        return self.rle or self.keep

    def add(self, window: np.ndarray, top: int, left: int) -> None:
        """One instance's ``window`` (boolean) whose top-left pixel is ``(top, left)`` in the frame."""
        width, height = self.frame
        if self.rle:
            self.rles.append(rle_encode_window(window, top, left, (height, width)))
        if self.keep:
            mask = np.zeros((height, width), bool)
            mask[top : top + window.shape[0], left : left + window.shape[1]] = window
            self.masks.append(mask)

    def detections(self, boxes: np.ndarray, found: Candidates, polygons: list[np.ndarray]) -> Detections:
        width, height = self.frame
        mask = None
        if self.keep:
            mask = np.stack(self.masks) if self.masks else np.zeros((0, height, width), bool)
        rle = self.rles if self.rle else None
        return Detections(boxes, found.scores, found.class_ids, mask=mask, polygons=polygons, rle=rle)


class YOLOv8SegmentationHead(TaskHead):
    name = "yolov8-seg"
    layout = "YOLOv8/11-seg [B, 4+nc+32, N] + prototypes [B, 32, mh, mw]"
    task = "instance-segmentation"
    families: ClassVar[tuple[str, ...]] = ("yolov8", "yolov11", "yolo11")
    parameters_type = SegmentationParameters
    priority = 40
    channel_axis: ClassVar[int] = 1
    values: ClassVar[int] = 4  # box values (and objectness) before the class scores

    @staticmethod
    def split(shapes: Sequence[Shape]) -> tuple[int, int] | None:
        """The indices of the predictions (rank 3) and the prototypes (rank 4), or ``None``."""
        ranks = [len(s) for s in shapes]
        if len(shapes) != 2 or sorted(ranks) != [3, 4]:
            return None
        return ranks.index(3), ranks.index(4)

    def fits(self, spec: OutputSpec) -> int:
        if spec.project_task != self.task:
            return NO
        found = self.split(spec.shapes)
        if found is None:  # chosen anyway, so that configure says what is missing
            single = len(spec.shapes) == 1 and len(spec.shapes[0]) == 3
            mine = self.channel_axis == 1 or bool(spec.model_type and self.claims(spec.model_type))
            return POSSIBLE if single and mine else NO
        pred = spec.shapes[found[0]]
        masks = dim(spec.shapes[found[1]][1])
        channels, anchors = dim(pred[self.channel_axis]), dim(pred[3 - self.channel_axis])
        if channels is not None and anchors is not None and channels > anchors:
            return NO
        expected = None if spec.num_classes is None or masks is None else self.values + spec.num_classes + masks
        return CERTAIN if matches(pred[self.channel_axis], expected) else NO

    def num_classes(self, shapes: Sequence[Shape]) -> int | None:
        found = self.split(shapes)
        if found is None:
            return None
        channels, masks = dim(shapes[found[0]][self.channel_axis]), dim(shapes[found[1]][1])
        return channels - self.values - masks if channels is not None and masks is not None else None

    def problem(self, shapes: Sequence[Shape], num_classes: int) -> str | None:
        if self.split(shapes) is None:
            return "expected predictions (rank 3) and prototypes (rank 4)"
        return super().problem(shapes, num_classes)

    def configure(self, spec: OutputSpec, artifacts: ModelArtifacts, class_names: list[str]) -> dict[str, Any]:
        found = self.split(spec.shapes)
        if found is None:
            raise UnsupportedModelOutputError(
                f"{artifacts.weights_path}: an instance-segmentation model needs a prototype output "
                f"[batch, 32, mask_height, mask_width] beside its predictions; its outputs are {spec.shown}"
            )
        return {"predictions": found[0], "prototypes": found[1], "num_classes": len(class_names) or None}

    def decode(self, outputs: Sequence[np.ndarray], settings: DecodeSettings) -> Candidates:
        raise NotImplementedError("the segmentation head decodes with its prototypes: see predictions")

    def candidates(self, pred: np.ndarray, num_classes: int, masks: int, parameters: InferenceParameters) -> Candidates:
        """The boxes of one image's predictions ``[4 + nc + M, N]``, their coefficients as ``extra``."""
        return channels_first_candidates(pred, num_classes, masks, parameters.confidence, parameters.max_candidates)

    def predictions(
        self,
        outputs: Sequence[np.ndarray],
        geometries: Sequence[ResizeGeometry],
        parameters: InferenceParameters,
        context: HeadContext,
    ) -> list[FramePrediction]:
        options = parameters if isinstance(parameters, SegmentationParameters) else SegmentationParameters()
        allowed = allowed_ids(context.class_names, parameters)
        results = []
        for index, geometry in enumerate(geometries):
            candidates, protos = self.image_candidates(outputs, index, context, parameters)
            found = suppress(candidates, parameters, allowed)
            boxes, inside = boxes_to_frame(found.boxes, geometry, context.round_boxes)
            found, boxes = found[np.flatnonzero(inside)], boxes[inside]
            if context.ultralytics and options.mask_decode_mode == "accurate":
                detections = self._ultralytics_masks(protos, found, boxes, geometry, context.input_size, options)
            else:
                detections = self._masks(protos, found, boxes, geometry, context.input_size, options)
            results.append(FramePrediction(geometry.frame, context.class_names, self.task, detections=detections))
        return results

    def image_candidates(
        self, outputs: Sequence[np.ndarray], index: int, context: HeadContext, parameters: InferenceParameters
    ) -> tuple[Candidates, np.ndarray]:
        """Image ``index``'s candidates (input pixels, coefficients as ``extra``) and its
        prototypes ``[M, mh, mw]``."""
        settings = context.settings
        preds, protos = outputs[settings["predictions"]], outputs[settings["prototypes"]]
        masks = protos.shape[1]
        num_classes = settings["num_classes"] or preds.shape[self.channel_axis] - self.values - masks
        return self.candidates(preds[index], num_classes, masks, parameters), protos[index]

    def _masks(
        self,
        protos: np.ndarray,
        found: Candidates,
        boxes: np.ndarray,
        geometry: ResizeGeometry,
        input_size: tuple[int, int],
        options: SegmentationParameters,
    ) -> Detections:
        source_w, source_h = geometry.source_size
        offset = np.array([geometry.offset_x, geometry.offset_y], np.float32)
        source_boxes = boxes - np.tile(offset, 2)
        frame_masks = _FrameMasks(options, geometry.frame)
        polygons: list[np.ndarray] = []
        assert found.extra is not None
        decoded = instance_masks(protos, found.extra, source_boxes, geometry, input_size, options)
        size = None
        for (instance, window, rows, cols), box in zip(decoded, source_boxes, strict=True):
            if size is None:
                ph, pw = instance.shape
                size = decode_size(options.mask_decode_mode, options.tradeoff_factor, (pw, ph), (source_w, source_h))
            binary = window > MASK_THRESHOLD
            outline = largest_outline(binary) + np.array([cols.start, rows.start], np.float32)
            polygons.append(outline * np.array([source_w / size[0], source_h / size[1]], np.float32) + offset)
            if not frame_masks.wanted:
                continue
            if size != (source_w, source_h):  # the box's window again, at the frame's size
                ((rows, cols),) = box_window(box[None], (source_h, source_w), (1.0, 1.0))
                binary = resample_window(instance, (source_w, source_h), rows, cols) > MASK_THRESHOLD
            frame_masks.add(binary, geometry.offset_y + rows.start, geometry.offset_x + cols.start)
        return frame_masks.detections(boxes, found, polygons)

    def _ultralytics_masks(
        self,
        protos: np.ndarray,
        found: Candidates,
        boxes: np.ndarray,
        geometry: ResizeGeometry,
        input_size: tuple[int, int],
        options: SegmentationParameters,
    ) -> Detections:
        """A bare Ultralytics export's masks, as its ``predict`` makes them (module docstring)."""
        source_w, source_h = geometry.source_size
        width, height = input_size
        gain = geometry.scale_x  # one gain for both axes (Ultralytics' LetterBox)
        half_w, half_h = geometry.point_pad or (float(geometry.pad_x), float(geometry.pad_y))  # unrounded
        offset = np.array([geometry.offset_x, geometry.offset_y], np.float32)
        # scale_masks: the picture's rows and columns in the input, resized to the frame
        top, left = round(half_h - 0.1), round(half_w - 0.1)
        bottom, right = height - round(half_h + 0.1), width - round(half_w + 0.1)
        picture = (right - left, bottom - top)
        frame_masks = _FrameMasks(options, geometry.frame)
        polygons: list[np.ndarray] = []
        assert found.extra is not None
        for binary, rows, cols in ultralytics_instance_masks(protos, found.extra, found.boxes, input_size):
            outline = largest_outline(binary) + np.array([cols.start, rows.start], np.float32)
            outline = (outline - np.array([half_w, half_h], np.float32)) / np.float32(gain)  # scale_coords
            outline[:, 0] = outline[:, 0].clip(0, source_w)
            outline[:, 1] = outline[:, 1].clip(0, source_h)
            polygons.append(outline + offset)
            if not frame_masks.wanted:
                continue
            inside = np.zeros((picture[1], picture[0]), np.float32)
            r0, r1 = max(rows.start - top, 0), min(rows.stop - top, picture[1])
            c0, c1 = max(cols.start - left, 0), min(cols.stop - left, picture[0])
            if r1 > r0 and c1 > c0:
                inside[r0:r1, c0:c1] = binary[
                    r0 + top - rows.start : r1 + top - rows.start, c0 + left - cols.start : c1 + left - cols.start
                ]
            fy, fx = source_h / picture[1], source_w / picture[0]
            frame_rows = _support(r0, r1, 1 / fy, source_h)
            frame_cols = _support(c0, c1, 1 / fx, source_w)
            window = resample_window(inside, (source_w, source_h), frame_rows, frame_cols) > MASK_THRESHOLD
            frame_masks.add(window, geometry.offset_y + frame_rows.start, geometry.offset_x + frame_cols.start)
        return frame_masks.detections(boxes, found, polygons)


class YOLOv5SegmentationHead(YOLOv8SegmentationHead):
    name = "yolov5-seg"
    layout = "YOLOv5-seg [B, N, 5+nc+32] + prototypes [B, 32, mh, mw]"
    families: ClassVar[tuple[str, ...]] = ("yolov5",)
    priority = 41
    channel_axis = 2
    values = 5

    def fits(self, spec: OutputSpec) -> int:
        if spec.task is not None:  # Ultralytics' exports use the YOLOv8 layout
            return NO
        return super().fits(spec)

    def candidates(self, pred: np.ndarray, num_classes: int, masks: int, parameters: InferenceParameters) -> Candidates:
        """The boxes of one image's predictions ``[N, 5 + nc + M]`` (objectness x best class)."""
        class_scores = pred[:, 5 : 5 + num_classes]
        scores = pred[:, 4] * class_scores.max(axis=1)
        keep = top_k(scores, np.flatnonzero(scores >= parameters.confidence), parameters.max_candidates)
        if not keep.size:
            return Candidates.empty(masks)
        boxes = cxcywh_to_xyxy(pred[keep, 0], pred[keep, 1], pred[keep, 2], pred[keep, 3])
        class_ids = class_scores[keep].argmax(axis=1).astype(np.int64)
        extra = pred[keep, 5 + num_classes : 5 + num_classes + masks].astype(np.float32)
        return Candidates(boxes, scores[keep].astype(np.float32), class_ids, extra)


register_head(YOLOv8SegmentationHead())
register_head(YOLOv5SegmentationHead())
