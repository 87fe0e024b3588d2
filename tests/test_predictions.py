"""Typed predictions: Roboflow's JSON made from them at the edge, supervision's types without a
JSON round trip, tracking on the typed columns, and NMS on up to 3,000 candidates."""

from __future__ import annotations

import json
import pickle
import uuid
from typing import Any

import numpy as np
import pytest
import supervision as sv

from framepipe.models import get_model
from framepipe.models.nms import non_max_suppression
from framepipe.pipeline.tracking import SourceTrackers
from framepipe.predictions import Detections, FramePrediction, RoboflowPrediction, detection_ids, to_payload
from framepipe.sources import VideoFrame
from tests.helpers import strip_ids

NAMES = ["circle", "square", "triangle", "star"]


def sample() -> FramePrediction:
    found = Detections(
        np.array([[10, 20, 50, 60], [100.5, 0, 120, 30.25]], np.float32),
        np.array([0.91234, 0.5], np.float32),
        np.array([3, 0]),
    )
    return FramePrediction((640, 360), NAMES, detections=found)


def test_roboflow_json_from_typed_detections() -> None:
    body = sample().to_roboflow()
    assert list(body) == ["image", "predictions"] and body["image"] == {"width": 640, "height": 360}
    first, second = body["predictions"]
    assert list(first) == ["x", "y", "width", "height", "confidence", "class", "class_id", "detection_id"]
    assert (first["x"], first["y"], first["width"], first["height"]) == (30.0, 40.0, 40.0, 40.0)
    assert (second["x"], second["width"], second["height"]) == (110.25, 19.5, 30.25)
    assert (first["class"], first["class_id"], first["confidence"]) == ("star", 3, round(float(np.float32(0.91234)), 4))
    ids = [p["detection_id"] for p in body["predictions"]]
    assert len(set(ids)) == 2 and all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids)


def test_detection_ids_are_distinct_version_4_uuids() -> None:
    ids = detection_ids(2000)
    assert len(set(ids)) == 2000
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in parsed)
    assert detection_ids(0) == []


def test_payload_is_a_plain_dict_to_everybody_else() -> None:
    prediction = sample()
    payload: Any = to_payload(prediction)
    assert isinstance(payload, dict)
    assert isinstance(payload, RoboflowPrediction) and payload.prediction is prediction
    assert json.loads(json.dumps(payload)) == dict(payload)
    copied = pickle.loads(pickle.dumps(payload))
    assert type(copied) is dict and copied == dict(payload)
    assert to_payload({"custom": 1}) == {"custom": 1} and to_payload(None) is None


def test_supervision_detections_without_json_round_trip() -> None:
    prediction = sample()
    ours: Any = prediction.to_supervision()
    theirs: Any = sv.Detections.from_inference(prediction.to_roboflow())
    np.testing.assert_allclose(ours.xyxy, theirs.xyxy)
    np.testing.assert_array_equal(ours.class_id, theirs.class_id)
    np.testing.assert_allclose(ours.confidence, theirs.confidence, atol=1e-4)
    assert ours.data["class_name"].tolist() == theirs.data["class_name"].tolist() == ["star", "circle"]


def test_model_output_is_typed_and_its_json_equals_infer() -> None:
    model = get_model("framepipe-shapes/1")
    from framepipe.demo.scenes import random_scene

    image = random_scene(320, 192, np.random.default_rng(3))[0]
    typed = model.predict(image)
    assert isinstance(typed, FramePrediction) and typed.detections is not None and len(typed.detections)
    assert strip_ids(typed.to_roboflow()) == strip_ids(model.infer(image))


def test_columns_are_validated() -> None:
    with pytest.raises(ValueError, match="confidence"):
        Detections(np.zeros((2, 4)), np.zeros(3), np.zeros(2))
    found = sample().detections
    assert found is not None and len(found[found.confidence > 0.6]) == 1 and len(Detections.empty()) == 0


class IouTracker:
    """A minimal tracker of the ``trackers`` interface: same id for a box that overlaps last frame's."""

    def __init__(self) -> None:
        self.last: list[tuple[np.ndarray, int]] = []
        self.next_id = 1

    def update(self, detections: sv.Detections) -> sv.Detections:
        ids = []
        for box in detections.xyxy:
            match = next((i for b, i in self.last if sv.box_iou_batch(box[None], b[None])[0, 0] > 0.5), None)
            if match is None:
                match, self.next_id = self.next_id, self.next_id + 1
            ids.append(match)
        self.last = list(zip(detections.xyxy, ids, strict=True))
        detections.tracker_id = np.array(ids, int)
        return detections

    def reset(self) -> None:
        self.last = []


def test_tracking_works_on_typed_detections() -> None:
    trackers = SourceTrackers(IouTracker)
    frame = VideoFrame(np.zeros((360, 640, 3), np.uint8), 1, __import__("datetime").datetime.now(), source_id=0)
    first: Any = trackers.apply(sample(), frame)
    second: Any = trackers.apply(sample(), frame)
    assert isinstance(second, FramePrediction) and second.detections is not None
    assert second.detections.tracker_id is not None
    assert first.detections.tracker_id.tolist() == second.detections.tracker_id.tolist() == [1, 2]
    assert [p["tracker_id"] for p in second.to_roboflow()["predictions"]] == [1, 2]


def _random_boxes(rng: np.random.Generator, count: int, clustered: bool) -> np.ndarray:
    if clustered:  # what a detector gives: many boxes around few objects
        centres = rng.uniform(50, 590, (max(count // 40, 1), 2))
        sizes = rng.uniform(20, 150, (len(centres), 2))
        pick = rng.integers(0, len(centres), count)
        centre = centres[pick] + rng.normal(0, 6, (count, 2))
        size = sizes[pick] * rng.uniform(0.85, 1.15, (count, 2))
        return np.concatenate([centre - size / 2, centre + size / 2], axis=1).astype(np.float32)
    xy = rng.uniform(0, 600, (count, 2))
    return np.concatenate([xy, xy + rng.uniform(2, 120, (count, 2))], axis=1).astype(np.float32)


@pytest.mark.parametrize("per_class", [False, True])
def test_nms_equals_supervision_on_random_sets_up_to_3000_candidates(per_class: bool) -> None:
    rng = np.random.default_rng(31 if per_class else 30)
    sizes = [0, 1, 2, 5, 20, 60, 200, 1000] * 12 + [3000] * 4  # 100 sets per variant, 200 in all
    for index, count in enumerate(sizes):
        boxes = _random_boxes(rng, count, clustered=index % 2 == 0)
        scores = rng.uniform(0, 1, count).astype(np.float32)
        classes = rng.integers(0, 4, count)
        threshold = float(rng.uniform(0.1, 0.9))
        ours = non_max_suppression(boxes, scores, threshold, classes if per_class else None)
        if count == 0:
            assert ours.tolist() == []
            continue
        columns: list[np.ndarray] = [boxes, scores[:, None]]
        if per_class:
            columns.append(classes[:, None])
        theirs = np.flatnonzero(sv.box_non_max_suppression(np.concatenate(columns, axis=1), threshold))
        assert sorted(ours.tolist()) == theirs.tolist(), (count, threshold)
        assert ours.tolist() == sorted(ours.tolist(), key=lambda i: -scores[i])  # best first
        best_three = non_max_suppression(boxes, scores, threshold, classes if per_class else None, 3)
        assert best_three.tolist() == ours[:3].tolist()
