"""Helpers of the inference-server tests (no tests here): real models in a model cache, real frames of
an H.264 clip, PNG/JPEG encodings, and a classifier whose graph does real work (a convolution), so that
requests overlap in its session."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.onnx_models import model_folder
from tests.test_tasks_keypoints import METADATA, pose_raw
from tests.test_tasks_segmentation import prototypes, v8_predictions

STRETCH = {"resize": {"enabled": True, "format": "Stretch to", "width": 640, "height": 640}}
TASK_MODELS = {
    "instance-segmentation": "fp-seg/1",
    "keypoint-detection": "fp-pose/1",
    "classification": "fp-cls/1",
}


def task_cache(root: Path) -> dict[str, str]:
    """A model cache (``MODEL_CACHE_DIR``) holding a segmentation, a keypoint and a classification
    model in Roboflow's layout; returns task -> model id."""
    seg = root / "fp-seg" / "1"
    model_folder(
        seg,
        {"output0": v8_predictions(), "output1": prototypes()},
        ["cat", "dog"],
        "yolov8n-seg",
        STRETCH,
        task_type="instance-segmentation",
    )
    model_folder(
        root / "fp-pose" / "1",
        {"output0": pose_raw()},
        ["person", "dog"],
        "yolov8n-pose",
        STRETCH,
        task_type="keypoint-detection",
        keypoints_metadata=METADATA,
    )
    model_folder(
        root / "fp-cls" / "1",
        {"output0": np.array([0.1, 0.7, 0.2], np.float32)},
        ["a", "b", "c"],
        "vit",
        STRETCH,
        task_type="classification",
    )
    return dict(TASK_MODELS)


def slow_classifier(folder: Path, size: int = 320, channels: int = 16) -> Path:
    """A classification model folder whose graph convolves the input (7x7, ``channels`` filters) before
    answering fixed scores: tens of milliseconds per image on a CPU, so concurrent requests overlap."""
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((channels, 3, 7, 7)).astype(np.float32) * 0.01
    nodes = [
        helper.make_node("Conv", ["images", "w"], ["features"], pads=[3, 3, 3, 3]),
        helper.make_node("ReduceMean", ["features"], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["mean", "flat"], ["mean_2d"]),
        helper.make_node("Mul", ["mean_2d", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "scores"], ["output0"]),
    ]
    initializers = [
        numpy_helper.from_array(weights, "w"),
        numpy_helper.from_array(np.array([-1, 1], np.int64), "flat"),
        numpy_helper.from_array(np.zeros((1, 1), np.float32), "zero"),
        numpy_helper.from_array(np.array([[0.2, 0.5, 0.3]], np.float32), "scores"),
    ]
    graph = helper.make_graph(
        nodes,
        "slow_classifier",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 3])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "weights.onnx"))
    pre = {"resize": {"enabled": True, "format": "Stretch to", "width": size, "height": size}}
    (folder / "environment.json").write_text(json.dumps({"PREPROCESSING": json.dumps(pre)}))
    (folder / "class_names.txt").write_text("a\nb\nc\n")
    (folder / "model_type.json").write_text(json.dumps({"project_task_type": "classification", "model_type": "vit"}))
    return folder


def clip_frames(video: str | Path, count: int) -> list[np.ndarray]:
    """The first ``count`` frames of a clip (BGR)."""
    capture = cv2.VideoCapture(str(video))
    frames: list[np.ndarray] = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == count
    return frames


def png(image: np.ndarray) -> bytes:
    return bytes(cv2.imencode(".png", image)[1].tobytes())


def b64(image: np.ndarray) -> str:
    """Lossless (PNG) base64, so the server decodes exactly ``image``."""
    return base64.b64encode(png(image)).decode("ascii")


def body(model_id: str, images: np.ndarray | list[np.ndarray], **fields: Any) -> dict[str, Any]:
    value: Any = (
        [{"type": "base64", "value": b64(i)} for i in images]
        if isinstance(images, list)
        else {"type": "base64", "value": b64(images)}
    )
    return {"model_id": model_id, "image": value, **fields}


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    """A server answer or ``infer`` result without its random ids and timing."""
    kept = {k: v for k, v in result.items() if k not in ("inference_id", "time", "visualization")}
    if isinstance(kept.get("predictions"), list):
        kept["predictions"] = [
            {k: v for k, v in p.items() if k != "detection_id"} if isinstance(p, dict) else p
            for p in kept["predictions"]
        ]
    return kept
