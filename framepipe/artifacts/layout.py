"""File names of a model folder in Roboflow's cache layout, and which weights name a model type uses.

Example:
    >>> from framepipe.artifacts.layout import weights_file_for
    >>> weights_file_for("yolov8n"), weights_file_for("yolov5v2s"), weights_file_for("resnet50")
    ('weights.onnx', 'yolov5s_weights.onnx', 'best.onnx')
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS_FILE_NAMES = ("weights.onnx", "yolov5s_weights.onnx", "best.onnx")
"""Weight file names Roboflow's cache uses, in the order they are looked for."""
ENVIRONMENT_FILE = "environment.json"
CLASS_NAMES_FILE = "class_names.txt"
MODEL_TYPE_FILE = "model_type.json"
KEYPOINTS_FILE = "keypoints_metadata.json"
MODEL_FILES = (*WEIGHTS_FILE_NAMES, ENVIRONMENT_FILE, CLASS_NAMES_FILE, MODEL_TYPE_FILE, KEYPOINTS_FILE)
"""Every file name a model folder may hold (Roboflow's names)."""

MODEL_TYPE_DEFAULTS = {
    "object-detection": "yolov5v2s",
    "instance-segmentation": "yolact",
    "classification": "vit",
    "keypoint-detection": "yolov8n",
}
"""Roboflow's model type per task when the registry gives none (or ``"ort"``)."""


def weights_file_for(model_type: str) -> str:
    """The weights file name Roboflow Inference reads for ``model_type``: YOLOv5 models use
    ``yolov5s_weights.onnx``, the ResNet and ViT classifiers ``best.onnx``, every other
    architecture ``weights.onnx``."""
    kind = model_type.lower()
    if kind.startswith("yolov5"):
        return "yolov5s_weights.onnx"
    return "best.onnx" if kind.startswith(("resnet", "vit")) else "weights.onnx"


def part_path(final: Path) -> Path:
    """The temporary name a file is downloaded under, in the same folder: ``.<name>.part``."""
    return final.with_name(f".{final.name}.part")
