"""``render_boxes`` and tracking for every task, checked by pixels: a mask colours its object
(and nothing outside it), a keypoint is drawn where it is and a skeleton edge joins two, a
missing keypoint is not drawn, a classification writes its top class; per-source trackers follow
segmentation and keypoint detections with their masks and keypoints. Real ONNX graphs run by
onnxruntime (the ones of tests/test_tasks_*.py)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import supervision as sv

from framepipe import InferencePipeline
from framepipe.predictions import to_payload
from framepipe.sinks import render_boxes
from framepipe.sinks.annotators import classification_labels
from framepipe.sinks.render import annotate
from tests.test_tasks_classification import classifier
from tests.test_tasks_keypoints import METADATA, pose_model
from tests.test_tasks_pipeline import folder_for
from tests.test_tasks_segmentation import LETTERBOX_WIDE, expected_masks, letterbox, seg_model

GREY = 100


def rendered(prediction: Any, width: int, height: int, **kwargs: Any) -> np.ndarray:
    from framepipe.sources.entities import VideoFrame

    frames: list[Any] = []
    image = np.full((height, width, 3), GREY, np.uint8)
    frame = VideoFrame(image=image, frame_id=1, frame_timestamp=__import__("datetime").datetime.now())
    render_boxes(prediction, frame, display_size=None, fps_monitor=None, on_frame_rendered=frames.append, **kwargs)
    assert frames and frames[0][1].shape == image.shape
    return frames[0][1]


def away_from_boxes(shape: tuple[int, int], boxes: np.ndarray, margin: int = 40) -> np.ndarray:
    """Pixels farther than ``margin`` from every box (labels and box lines are drawn near them)."""
    keep = np.ones(shape, bool)
    for x1, y1, x2, y2 in boxes.astype(int).tolist():
        keep[max(y1 - margin, 0) : y2 + margin, max(x1 - margin, 0) : x2 + margin] = False
    return keep


@pytest.mark.parametrize("as_json", [False, True], ids=["typed", "roboflow-json"])
def test_a_mask_colours_its_object(tmp_path: Path, as_json: bool) -> None:
    width, height, to_input = LETTERBOX_WIDE
    model = seg_model(tmp_path, letterbox())
    typed = model.predict(np.full((height, width, 3), GREY, np.uint8))
    payload: Any = to_payload(typed)
    if as_json:
        payload = dict(payload)  # what a custom sink gets back from JSON: supervision fills the polygons
    image = rendered(payload, width, height)
    cat, _ = expected_masks(width, height, to_input)
    inside = cv2.erode(cat.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    box = typed.detections.xyxy[0].astype(int)  # type: ignore[union-attr]
    inside[: box[1] + 30] = False  # the label sits on the box's top edge
    colour = np.array(sv.ColorPalette.DEFAULT.by_idx(0).as_bgr(), float)
    expected = 0.5 * GREY + 0.5 * colour
    assert inside.sum() > 5000
    assert np.abs(image[inside].astype(float) - expected).max() <= 2, (image[inside][:3], expected)
    outside = away_from_boxes((height, width), typed.detections.xyxy)  # type: ignore[union-attr]
    assert (image[outside] == GREY).all()  # nothing drawn away from the objects
    # between the disk and the box's edge: the box is drawn, the mask does not spill
    ring = ~cv2.dilate(cat.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    ring[: box[1] + 30] = False
    ring[:, : box[0] + 6] = ring[:, box[2] - 6 :] = False
    ring[box[3] - 6 :] = ring[: box[1] + 6] = False
    assert ring.sum() > 1000 and (image[ring] == GREY).all()


def test_user_mask_annotator_gets_masks_from_the_polygons(tmp_path: Path) -> None:
    width, height, to_input = LETTERBOX_WIDE
    model = seg_model(tmp_path, letterbox())
    payload = to_payload(model.predict(np.full((height, width, 3), GREY, np.uint8)))
    assert payload.prediction.detections.mask is None  # not kept: the render makes them
    image = rendered(payload, width, height, annotator=sv.MaskAnnotator(opacity=1.0))
    cat, _ = expected_masks(width, height, to_input)
    inside = cv2.erode(cat.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert (image[inside] == np.array(sv.ColorPalette.DEFAULT.by_idx(0).as_bgr())).all()


BLACK_LETTERBOX = {"resize": {"enabled": True, "format": "Fit (black edges) in", "width": 640, "height": 640}}
EDGED = [{**METADATA[0], "edges": [[0, 2]]}, METADATA[1]]  # the person's head to its foot


@pytest.mark.parametrize("as_json", [False, True], ids=["typed", "roboflow-json"])
def test_keypoints_and_skeleton_are_drawn_where_they_are(tmp_path: Path, as_json: bool) -> None:
    width, height = 1000, 500  # letterbox 0.64, 160 input pixels of padding above
    model = pose_model(tmp_path, BLACK_LETTERBOX, EDGED)
    typed = model.predict(np.full((height, width, 3), GREY, np.uint8), keypoint_confidence=0.5)
    payload: Any = to_payload(typed)
    assert typed.keypoint_edges == {0: [(0, 2)]}
    if as_json:
        payload = dict(payload)
    image = rendered(payload, width, height)
    vertex = np.array(sv.Color.ROBOFLOW.as_bgr())

    def at(x_in: float, y_in: float) -> np.ndarray:  # input pixels to the frame pixel's colour
        return image[int((y_in - 160) / 0.64), int(x_in / 0.64)]

    assert (at(300, 300) == vertex).all() and (at(320, 360) == vertex).all()  # the person's head and foot
    assert (at(340, 310) == GREY).all()  # the hand (confidence 0.2 < 0.5) is missing: not drawn
    if not as_json:  # supervision's reader drops the skeleton with the metadata
        assert (at(310, 330) == 255).all()  # the head-foot edge, white, half way
    else:
        assert (at(310, 330) == GREY).all()


def test_classification_writes_its_top_class(tmp_path: Path) -> None:
    model = classifier(tmp_path, [0.1, 3.0, 0.2])
    payload = to_payload(model.predict(np.full((300, 400, 3), GREY, np.uint8)))
    assert classification_labels(payload) == [f"{payload['top']} {payload['confidence']:.2f}"]
    image = rendered(payload, 400, 300)
    changed = (image != GREY).any(axis=2)
    rows, cols = np.nonzero(changed)
    assert changed.sum() > 200 and rows.max() < 60 and cols.max() < 200  # a label in the top-left corner only
    assert (image.min(axis=2) > 200).sum() > 30  # its letters, light on the dark box
    other = annotate(np.full((300, 400, 3), GREY, np.uint8), {**payload, "top": "zzzz zzzz", "confidence": 0.5})
    assert (other != image).any()  # another class reads differently
    multi = {"predictions": {"a": {"confidence": 0.9, "class_id": 0}}, "predicted_classes": ["a"]}
    assert classification_labels(multi) == ["a 0.90"]


@pytest.mark.parametrize("task", ["instance-segmentation", "keypoint-detection"])
def test_trackers_follow_masks_and_keypoints(tmp_path: Path, clip: Any, task: str) -> None:
    from trackers import ByteTrackTracker

    received: list[Any] = []
    pipeline = InferencePipeline.init(
        clip.video_path,
        str(folder_for(task, tmp_path)),
        lambda p, f: received.append(p),
        tracker=lambda: ByteTrackTracker(frame_rate=30, track_activation_threshold=0.5),
    )
    pipeline.start()
    pipeline.join()
    assert len(received) == clip.frames
    shapes: dict[int, Any] = {}
    for payload in received[2:]:
        typed = payload.prediction
        assert typed.detections.tracker_id is not None
        for item in payload["predictions"]:
            assert "tracker_id" in item
            outline = item["points"] if task == "instance-segmentation" else item["keypoints"]
            assert len(outline) >= 2
            known = shapes.setdefault(item["tracker_id"], (item["class"], outline))
            assert known == (item["class"], outline)  # each track keeps its own mask / keypoints
    assert len(shapes) == len(received[-1]["predictions"]) >= 2


def test_every_sink_carries_every_task(tmp_path: Path, clip: Any) -> None:
    import json
    import socket

    from framepipe.sinks import InMemoryBufferSink, JsonlSink, UDPSink, VideoFileSink, multi_sink

    key = {"classification": "top", "instance-segmentation": "points", "keypoint-detection": "keypoints"}
    for task, field in key.items():
        out = tmp_path / task
        out.mkdir()
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5.0)
        buffer = InMemoryBufferSink(queue_size=clip.frames)
        video = VideoFileSink.init(str(out / "out.mp4"))
        jsonl = JsonlSink(out / "out.jsonl")
        udp = UDPSink.init("127.0.0.1", receiver.getsockname()[1])
        pipeline = InferencePipeline.init(
            clip.video_path,
            str(folder_for(task, tmp_path / f"model-{task}")),
            partial(multi_sink, sinks=[buffer.on_prediction, video.on_prediction, jsonl.on_prediction, udp]),
        )
        pipeline.start()
        pipeline.join()
        video.release()
        jsonl.release()
        udp.release()
        lines = [json.loads(line) for line in (out / "out.jsonl").read_text().splitlines()]
        assert len(lines) == clip.frames
        assert all(field in json.dumps(line) for line in lines), task
        messages = [json.loads(receiver.recv(1 << 16)) for _ in range(udp.sent)]
        receiver.close()
        assert udp.sent == clip.frames and all(field in json.dumps(m) for m in messages), task
        kept = []
        while not buffer.empty():
            kept.append(buffer.consume_prediction()[0][0])
        assert len(kept) == clip.frames and kept[0].prediction.task == task
        capture = cv2.VideoCapture(str(out / "out.mp4"))
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == clip.frames
        capture.release()
