"""Keypoint models (YOLOv8/11-pose ``[B, 4 + nc + 3K, N]``) on real ONNX graphs run by
onnxruntime: keypoints through NMS, back to frame pixels (letterbox, stretch, padded edges),
named from ``keypoints_metadata.json`` or ``kpt_shape``, the ``keypoint_confidence`` marker, and
supervision reading the JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import supervision as sv

from framepipe.errors import ModelArtifactError
from framepipe.models import OnnxModel, load_model
from tests.onnx_models import build_model, model_folder

NAMES = ["person", "dog"]
METADATA = [
    {"object_class_id": 0, "keypoints": {"0": "head", "1": "hand", "2": "foot"}},
    {"object_class_id": 1, "keypoints": {"1": "tail", "0": "nose"}},
]


def pose_raw() -> np.ndarray:
    """[4 + 2 + 3 * 3, 20]: cx, cy, w, h, person, dog, then three (x, y, confidence)."""
    columns = [
        [320, 320, 200, 100, 0.9, 0.0, 300, 300, 0.9, 340, 310, 0.2, 320, 360, 0.8],  # person 220,270,420,370
        [322, 320, 200, 100, 0.8, 0.0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # the same person: NMS drops it
        [100, 500, 80, 60, 0.0, 0.7, 90, 490, 0.95, 110, 510, 0.5, 0, 0, 0],  # dog 60,470,140,530; padded 3rd
        [50, 50, 10, 10, 0.1, 0.0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # below the confidence threshold
        [500, 170, 100, 40, 0.6, 0.0, 480, 150, 0.7, 500, 170, 0.7, 520, 185, 0.7],  # straddles the top padding
    ]
    columns += [[0.0] * 15] * 15
    return np.array(columns, np.float32).T


def pose_model(tmp_path: Path, pre: dict, metadata: list | None = METADATA) -> OnnxModel:
    folder = model_folder(
        tmp_path / "pose",
        {"output0": pose_raw()},
        NAMES,
        "yolov8n-pose",
        pre,
        task_type="keypoint-detection",
        keypoints_metadata=metadata,
    )
    model = load_model(str(folder))
    assert isinstance(model, OnnxModel) and model.head.name == "yolov8-pose"
    return model


def letterbox() -> dict:
    return {"resize": {"enabled": True, "format": "Fit (black edges) in", "width": 640, "height": 640}}


def stretch() -> dict:
    return {"resize": {"enabled": True, "format": "Stretch to", "width": 640, "height": 640}}


def keypoints_of(item: dict[str, Any]) -> list[tuple[str, float, float, float]]:
    return [(k["class"], k["x"], k["y"], k["confidence"]) for k in item["keypoints"]]


def test_letterbox_wide_frame(tmp_path: Path) -> None:
    model = pose_model(tmp_path, letterbox())
    assert model.task_type == "keypoint-detection"
    result = model.infer(np.zeros((500, 1000, 3), np.uint8))

    # 1000x500 fits as 640x320, 160 px of padding above: x = x_in / 0.64, y = (y_in - 160) / 0.64
    def to_frame(x: float, y: float) -> tuple[float, float]:
        return x / 0.64, min(max((y - 160) / 0.64, 0.0), 500.0)

    person, dog, edge = result["predictions"]
    assert (person["class"], person["confidence"]) == ("person", 0.9)
    assert [person["x"], person["y"], person["width"], person["height"]] == [500, 250, 312, 156]
    expected = [("head", 300, 300, 0.9), ("hand", 340, 310, 0.2), ("foot", 320, 360, 0.8)]
    for got, (name, x, y, score) in zip(keypoints_of(person), expected, strict=True):
        assert got[0] == name and np.allclose(got[1:3], to_frame(x, y), atol=1e-3) and got[3] == score
    assert [k["class_id"] for k in person["keypoints"]] == [0, 1, 2]
    assert dog["class"] == "dog" and [k[0] for k in keypoints_of(dog)] == ["nose", "tail"]  # the padded 3rd dropped
    # the keypoint at y_in = 150 lies in the padding: clipped to the frame's top edge
    assert edge["keypoints"][0]["y"] == 0.0 and np.isclose(edge["keypoints"][0]["x"], 480 / 0.64)
    assert np.isclose(edge["keypoints"][2]["y"], (185 - 160) / 0.64)


def test_stretch_portrait_frame(tmp_path: Path) -> None:
    model = pose_model(tmp_path, stretch())
    result = model.infer(np.zeros((700, 500, 3), np.uint8))  # 500x700 stretched: x / 1.28, y * 700 / 640
    person = result["predictions"][0]
    assert person["class"] == "person"
    for got, (x, y) in zip(keypoints_of(person), [(300, 300), (340, 310), (320, 360)], strict=True):
        assert np.allclose(got[1:3], (x * 500 / 640, y * 700 / 640), atol=1e-3)
    typed = model.predict(np.zeros((700, 500, 3), np.uint8))
    assert typed.detections is not None and typed.detections.keypoints is not None
    assert typed.detections.keypoints.shape == (3, 3, 3)


def test_keypoint_confidence_marks_and_supervision_reads(tmp_path: Path) -> None:
    model = pose_model(tmp_path, letterbox())
    result = model.infer(np.zeros((500, 1000, 3), np.uint8), keypoint_confidence=0.5)
    person = result["predictions"][0]
    assert len(person["keypoints"]) == 3  # all kept
    assert keypoints_of(person)[1] == ("hand", 0.0, 0.0, 0.0)  # 0.2 < 0.5: marked missing
    key_points = sv.KeyPoints.from_inference(result)
    assert key_points.xy.shape == (3, 3, 2)
    assert np.allclose(key_points.xy[0, 0], (300 / 0.64, (300 - 160) / 0.64), atol=1e-3)
    scores = key_points.keypoint_confidence
    assert scores is not None and scores[0].tolist() == pytest.approx([0.9, 0, 0.8])
    assert key_points.class_id is not None and key_points.class_id.tolist() == [0, 1, 0]


def test_to_supervision_key_points(tmp_path: Path) -> None:
    from framepipe.predictions.supervision import to_key_points

    typed = pose_model(tmp_path, letterbox()).predict(np.zeros((500, 1000, 3), np.uint8))
    found = to_key_points(typed)
    assert found.xy.shape == (3, 3, 2) and list(found.data["class_name"]) == ["person", "dog", "person"]


def test_metadata_disagreeing_with_outputs(tmp_path: Path) -> None:
    wrong = [{"object_class_id": 0, "keypoints": {str(i): f"k{i}" for i in range(4)}}]
    with pytest.raises(ModelArtifactError, match="names 4 keypoints for a class but the model outputs 3"):
        pose_model(tmp_path, letterbox(), wrong)


def test_channels_not_a_whole_number_of_keypoints(tmp_path: Path) -> None:
    folder = model_folder(
        tmp_path / "bad",
        {"output0": pose_raw()[:14]},
        NAMES,
        "yolov8n-pose",
        letterbox(),
        task_type="keypoint-detection",
    )
    with pytest.raises(ModelArtifactError, match="not a whole number"):
        load_model(str(folder))


def test_bare_ultralytics_pose_export_named_from_kpt_shape(tmp_path: Path) -> None:
    metadata = {"task": "pose", "names": "{0: 'person', 1: 'dog'}", "kpt_shape": "[3, 3]", "imgsz": "[640, 640]"}
    path = build_model(tmp_path / "pose.onnx", {"output0": pose_raw()}, metadata=metadata)
    model = load_model(str(path))
    assert isinstance(model, OnnxModel) and model.task_type == "keypoint-detection"
    person = model.infer(np.zeros((640, 640, 3), np.uint8))["predictions"][0]
    assert [k["class"] for k in person["keypoints"]] == ["0", "1", "2"]
    assert [(k["x"], k["y"]) for k in person["keypoints"]] == [(300, 300), (340, 310), (320, 360)]
    wrong = {**metadata, "kpt_shape": "[5, 3]"}
    with pytest.raises(ModelArtifactError, match="kpt_shape says 5 keypoints"):
        load_model(str(build_model(tmp_path / "wrong.onnx", {"output0": pose_raw()}, metadata=wrong)))


def test_task_parameters(tmp_path: Path) -> None:
    model = pose_model(tmp_path, letterbox())
    with pytest.raises(TypeError, match="mask_decode_mode"):
        model.infer(np.zeros((64, 64, 3), np.uint8), mask_decode_mode="fast")
    from framepipe.models.params import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="keypoint_confidence"):
        model.infer(np.zeros((64, 64, 3), np.uint8), keypoint_confidence=2)
