"""Every task's model in an ``InferencePipeline`` on a real H.264 clip: each frame's payload is
that task's Roboflow JSON (with the typed prediction behind it), through the batching executor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from framepipe import InferencePipeline
from tests.onnx_models import model_folder
from tests.test_tasks_keypoints import METADATA, pose_raw
from tests.test_tasks_segmentation import prototypes, v8_predictions

STRETCH = {"resize": {"enabled": True, "format": "Stretch to", "width": 640, "height": 640}}


def folder_for(task: str, tmp_path: Path) -> Path:
    if task == "instance-segmentation":
        outputs = {"output0": v8_predictions(), "output1": prototypes()}
        return model_folder(tmp_path / "seg", outputs, ["cat", "dog"], "yolov8n-seg", STRETCH, task_type=task)
    if task == "keypoint-detection":
        return model_folder(
            tmp_path / "pose",
            {"output0": pose_raw()},
            ["person", "dog"],
            "yolov8n-pose",
            STRETCH,
            task_type=task,
            keypoints_metadata=METADATA,
        )
    scores = {"output0": np.array([0.1, 0.7, 0.2], np.float32)}
    return model_folder(tmp_path / "cls", scores, ["a", "b", "c"], "vit", STRETCH, task_type=task)


def check(task: str, payload: dict[str, Any]) -> None:
    assert payload["image"] == {"width": 640, "height": 360}
    assert payload.prediction.task == task  # type: ignore[attr-defined]
    if task == "classification":
        assert payload["top"] == "b" and payload["confidence"] == 0.7
    elif task == "instance-segmentation":
        assert [len(p["points"]) >= 3 for p in payload["predictions"]] == [True, True]
    else:
        assert [len(p["keypoints"]) for p in payload["predictions"]][:2] == [3, 2]


@pytest.mark.parametrize("task", ["classification", "instance-segmentation", "keypoint-detection"])
def test_pipeline_runs_each_task(tmp_path: Path, clip: Any, task: str) -> None:
    received: list[Any] = []
    pipeline = InferencePipeline.init(clip.video_path, str(folder_for(task, tmp_path)), lambda p, f: received.append(p))
    pipeline.start()
    pipeline.join()
    assert len(received) == clip.frames
    for payload in received:
        check(task, payload)


def test_pipeline_passes_task_parameters_to_the_model(tmp_path: Path, clip: Any, caplog: Any) -> None:
    folder = folder_for("instance-segmentation", tmp_path)
    pipeline = InferencePipeline.init(clip.video_path, str(folder), lambda p, f: None, mask_decode_mode="fast")
    assert getattr(pipeline.inference_parameters, "mask_decode_mode", None) == "fast"
    pipeline.terminate()
    detector = InferencePipeline.init(clip.video_path, "framepipe-shapes/1", lambda p, f: None, mask_decode_mode="fast")
    assert not hasattr(detector.inference_parameters, "mask_decode_mode")
    detector.terminate()


def test_pipeline_passes_keypoint_confidence_and_classifier_confidence(tmp_path: Path, clip: Any) -> None:
    received: list[Any] = []
    folder = folder_for("keypoint-detection", tmp_path)
    pipeline = InferencePipeline.init(
        clip.video_path, str(folder), lambda p, f: received.append(p), keypoint_confidence=0.5
    )
    pipeline.start()
    pipeline.join()
    person = received[0]["predictions"][0]
    assert [k["confidence"] for k in person["keypoints"]] == [0.9, 0.0, 0.8]  # the 0.2 hand marked missing
    classes: list[Any] = []
    classifier = folder_for("classification", tmp_path)
    pipeline = InferencePipeline.init(clip.video_path, str(classifier), lambda p, f: classes.append(p), confidence=0.15)
    pipeline.start()
    pipeline.join()
    assert [p["class"] for p in classes[0]["predictions"]] == ["b", "c"]  # 0.1 is below the threshold
