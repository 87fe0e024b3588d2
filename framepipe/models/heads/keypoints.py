"""Keypoint outputs of YOLOv8/11-pose: ``[B, 4 + nc + K * d, N]`` (cx, cy, w, h, class scores,
then ``K`` keypoints of ``d`` values, ``x, y[, confidence]``), in model-input pixels.

The keypoint columns ride through NMS with their box, then go back to frame pixels as boxes do
(clipped to the frame). Names come from ``keypoints_metadata.json`` (Roboflow's
``[{"object_class_id": 0, "keypoints": {"0": "nose", ...}}]``), else from Ultralytics' ``kpt_shape``
(named by index). An entry may also carry the class's skeleton, ``"edges"`` (or COCO's
``"skeleton"``): ``[a, b]`` pairs or ``{"from": a, "to": b}`` objects of 0-based keypoint
indices, which ``render_boxes`` joins with lines. ``K`` must agree with the outputs: the
largest keypoint list of the metadata must hold exactly ``K`` names (Ultralytics pads classes
with fewer keypoints with zeros, so smaller lists for other classes are fine), and
``kpt_shape`` must match the channels; else ``ModelArtifactError`` says what disagrees.

Keypoints scored below the request's ``keypoint_confidence`` are kept, marked missing
(``x = y = confidence = 0``), so that every object has all its keypoints (supervision's
``KeyPoints.from_inference`` and annotators read that marker).

Example:
    >>> from framepipe.models.heads.keypoints import parse_keypoint_names
    >>> parse_keypoint_names([{"object_class_id": 0, "keypoints": {"1": "tail", "0": "head"}}], "meta")
    {0: ['head', 'tail']}
    >>> parse_keypoint_edges([{"object_class_id": 0, "keypoints": {"0": "a", "1": "b"}, "edges": [[0, 1]]}], "meta")
    {0: [(0, 1)]}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from framepipe.artifacts.folder import parse_json
from framepipe.artifacts.layout import KEYPOINTS_FILE
from framepipe.errors import ModelArtifactError
from framepipe.models.heads.base import (
    CERTAIN,
    NO,
    Candidates,
    DecodeSettings,
    HeadContext,
    OutputSpec,
    Shape,
    TaskHead,
    allowed_ids,
    boxes_to_frame,
    channels_first_candidates,
    dim,
    literal,
    one_rank3,
    suppress,
)
from framepipe.models.heads.registry import register_head
from framepipe.models.params import InferenceParameters, KeypointParameters
from framepipe.predictions import Detections, FramePrediction

if TYPE_CHECKING:
    from framepipe.artifacts import ModelArtifacts
    from framepipe.models.preprocess import ResizeGeometry


def parse_keypoint_names(metadata: Any, where: object) -> dict[int, list[str]]:
    """Roboflow's ``keypoints_metadata.json`` as ``{class_id: [names in keypoint order]}``."""
    if not isinstance(metadata, list):
        raise ModelArtifactError(f"{where}: expected a list of {{object_class_id, keypoints}}, got {metadata!r:.80}")
    names: dict[int, list[str]] = {}
    for entry in metadata:
        if not isinstance(entry, dict) or not isinstance(entry.get("keypoints"), dict):
            raise ModelArtifactError(f"{where}: each entry needs object_class_id and keypoints, got {entry!r:.80}")
        class_id = entry.get("object_class_id")
        points = entry["keypoints"]
        try:
            order = sorted(points, key=int)
        except (TypeError, ValueError):
            raise ModelArtifactError(f"{where}: keypoint keys must be indices, got {sorted(points)!r:.80}") from None
        if not isinstance(class_id, int) or [int(k) for k in order] != list(range(len(order))):
            raise ModelArtifactError(f"{where}: class {class_id!r}: keypoints must be numbered 0..n-1 (got {order})")
        names[class_id] = [str(points[k]) for k in order]
    return names


def _edge(value: Any) -> tuple[Any, Any] | None:
    if isinstance(value, dict):
        value = (value.get("from", value.get("source")), value.get("to", value.get("target")))
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return value[0], value[1]
    return None


def parse_keypoint_edges(metadata: Any, where: object) -> dict[int, list[tuple[int, int]]]:
    """The skeletons of ``keypoints_metadata.json``, ``{class_id: [(a, b), ...]}`` (0-based
    keypoint indices), for the classes that have one."""
    names = parse_keypoint_names(metadata, where)
    edges: dict[int, list[tuple[int, int]]] = {}
    for entry in metadata:
        raw = entry.get("edges", entry.get("skeleton"))
        if raw is None:
            continue
        class_id, count = entry["object_class_id"], len(names[entry["object_class_id"]])
        if not isinstance(raw, list):
            raise ModelArtifactError(f"{where}: class {class_id}: edges must be a list, got {raw!r:.80}")
        pairs = []
        for value in raw:
            pair = _edge(value)
            ok = pair is not None and all(isinstance(i, int) and 0 <= i < count for i in pair)
            if not ok:
                raise ModelArtifactError(
                    f"{where}: class {class_id}: edge {value!r:.40} is not a pair of keypoint indices 0..{count - 1}"
                )
            assert pair is not None
            pairs.append((int(pair[0]), int(pair[1])))
        edges[class_id] = pairs
    return edges


class KeypointHead(TaskHead):
    name = "yolov8-pose"
    layout = "YOLOv8/11-pose [B, 4+nc+3K, N]"
    task = "keypoint-detection"
    families = ("yolov8", "yolov11", "yolo11")
    parameters_type = KeypointParameters
    priority = 50

    def fits(self, spec: OutputSpec) -> int:
        if spec.project_task != self.task or not one_rank3(spec):
            return NO  # without a task, this layout is a detector's with more classes
        channels = dim(spec.shapes[0][1])
        if channels is not None and spec.num_classes is not None and channels <= 4 + spec.num_classes:
            return NO
        return CERTAIN

    def problem(self, shapes: Sequence[Shape], num_classes: int) -> str | None:
        if len(shapes) != 1 or len(shapes[0]) != 3:
            return "expected one output of rank 3"
        return None

    def configure(self, spec: OutputSpec, artifacts: ModelArtifacts, class_names: list[str]) -> dict[str, Any]:
        where = artifacts.weights_path
        channels = dim(spec.shapes[0][1])
        shape = literal(spec.metadata.get("kpt_shape"))
        kpt_count, dims = (None, 3)
        if shape is not None:
            if not (isinstance(shape, (list, tuple)) and len(shape) == 2 and shape[1] in (2, 3) and shape[0] > 0):
                raise ModelArtifactError(f"{where}: kpt_shape {shape!r} is not [keypoints, 2 or 3]")
            kpt_count, dims = int(shape[0]), int(shape[1])
        num_classes = len(class_names) or None
        if num_classes is None and channels is not None and kpt_count is not None:
            num_classes = channels - 4 - kpt_count * dims
        if channels is None or num_classes is None:
            raise ModelArtifactError(f"{where}: cannot tell the keypoints from the classes in {spec.shown}")
        rest = channels - 4 - num_classes
        if rest <= 0 or rest % dims:
            raise ModelArtifactError(
                f"{where}: {channels} channels leave {rest} keypoint values after 4 box values and {num_classes} "
                f"classes: not a whole number of ({dims}-value) keypoints"
            )
        found = rest // dims
        if kpt_count is not None and kpt_count != found:
            raise ModelArtifactError(f"{where}: kpt_shape says {kpt_count} keypoints, the outputs carry {found}")
        names = {c: [str(i) for i in range(found)] for c in range(num_classes)}
        edges: dict[int, list[tuple[int, int]]] = {}
        path = artifacts.folder / KEYPOINTS_FILE  # a bare .onnx file's folder is the one it lies in
        if path.is_file():
            metadata = parse_json(path.read_bytes(), path)
            names = parse_keypoint_names(metadata, path)
            edges = parse_keypoint_edges(metadata, path)
            most = max((len(v) for v in names.values()), default=0)
            if most != found:
                raise ModelArtifactError(
                    f"{path} names {most} keypoints for a class but the model outputs {found} per object"
                )
        return {"num_classes": num_classes, "keypoints": found, "dims": dims, "names": names, "edges": edges or None}

    def decode(self, outputs: Sequence[np.ndarray], settings: DecodeSettings) -> Candidates:
        raise NotImplementedError("the keypoint head decodes with its model's class count: see predictions")

    def _candidates(
        self, pred: np.ndarray, num_classes: int, values: int, parameters: InferenceParameters
    ) -> Candidates:
        return channels_first_candidates(pred, num_classes, values, parameters.confidence, parameters.max_candidates)

    def predictions(
        self,
        outputs: Sequence[np.ndarray],
        geometries: Sequence[ResizeGeometry],
        parameters: InferenceParameters,
        context: HeadContext,
    ) -> list[FramePrediction]:
        settings = context.settings
        num_classes, count, dims = settings["num_classes"], settings["keypoints"], settings["dims"]
        threshold = parameters.keypoint_confidence if isinstance(parameters, KeypointParameters) else 0.0
        allowed = allowed_ids(context.class_names, parameters)
        results = []
        for index, geometry in enumerate(geometries):
            found = suppress(
                self._candidates(outputs[0][index], num_classes, count * dims, parameters), parameters, allowed
            )
            boxes, inside = boxes_to_frame(found.boxes, geometry, context.round_boxes)
            assert found.extra is not None
            raw = found.extra.reshape(len(boxes), count, dims)
            points = np.zeros((len(boxes), count, 3), np.float32)
            points[..., :2] = geometry.points_to_source(raw[..., :2])
            points[..., 2] = raw[..., 2] if dims == 3 else 1.0
            points[points[..., 2] < threshold] = 0.0  # kept, marked missing
            detections = Detections(
                boxes[inside], found.scores[inside], found.class_ids[inside], keypoints=points[inside]
            )
            results.append(
                FramePrediction(
                    geometry.frame,
                    context.class_names,
                    self.task,
                    detections=detections,
                    keypoint_names=settings["names"],
                    keypoint_edges=settings["edges"],
                )
            )
        return results


register_head(KeypointHead())
