"""The three task demo models shipped with framepipe (trained by framepipe/demo/train_cls.py,
train_seg.py and train_pose.py), run by onnxruntime on generated frames they were not trained on
(the clip generator, other seeds), and `framepipe demo --task` end to end.

The bounds here are looser than the figures the note reports for whole clips (a few frames only,
kept cheap); the full figures come from `framepipe demo --task X` (see the README)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from framepipe.artifacts import bundled_model_ids
from framepipe.demo.clip import scene_states
from framepipe.demo.run import CLIP_OPTIONS, TASK_MODEL_IDS
from framepipe.demo.scenes import CLASS_NAMES, KEYPOINT_NAMES
from framepipe.demo.scoring import make_scorer
from framepipe.models import get_model

TASK_MODELS = {
    "segment": "framepipe-shapes-seg/1",
    "classify": "framepipe-shapes-cls/1",
    "pose": "framepipe-shapes-pose/1",
}


def _frames(task: str, count: int, seed: int) -> list:
    """``count`` frames a second apart from a generated clip of the task's kind."""
    options = dict(CLIP_OPTIONS.get(task, {}))
    options.pop("scene_seconds", None)
    frames = []
    for scene in range(count if task == "classify" else 1):  # the classifier: one scene per frame
        states = scene_states(seconds=1.0 if task == "classify" else count, fps=1.0, seed=seed + scene, **options)
        frames += list(states)[: 1 if task == "classify" else count]
    return frames


def test_the_task_models_are_bundled() -> None:
    assert set(TASK_MODELS.values()) <= set(bundled_model_ids())
    assert TASK_MODEL_IDS == {"detect": "framepipe-shapes/1", **TASK_MODELS}
    for model_id in TASK_MODELS.values():
        weights = Path(__file__).parents[1] / "framepipe" / "artifacts" / "bundled" / model_id / "weights.onnx"
        assert weights.stat().st_size <= 5 * 1024 * 1024


@pytest.mark.parametrize(
    ("task", "count", "bounds"),
    [
        ("classify", 12, {"top1": 0.9}),
        ("segment", 3, {"precision": 0.85, "recall": 0.85, "mask_iou": 0.75}),
        ("pose", 10, {"precision": 0.85, "recall": 0.85, "pck": 0.85}),
    ],
)
def test_each_task_model_meets_its_quality_on_unseen_frames(task: str, count: int, bounds: dict) -> None:
    model = get_model(TASK_MODELS[task])
    scorer = make_scorer(task)
    for image, truth, shapes in _frames(task, count, seed=9100):
        scorer.add(model.infer(image), truth, shapes)
    figures = scorer.figures()
    assert all(figures[name] >= bound for name, bound in bounds.items()), figures


def test_the_pose_model_names_each_class_vertices() -> None:
    model = get_model(TASK_MODELS["pose"])
    ((image, _, _),) = _frames("pose", 1, seed=9200)
    result = model.infer(image)
    assert result["predictions"], "found nothing"
    for item in result["predictions"]:
        names = [k["class"] for k in item["keypoints"]]
        assert names == list(KEYPOINT_NAMES[item["class"]])  # a circle: none; a star: ten
    typed = model.predict(image)
    assert typed.detections.keypoints is not None
    assert typed.detections.keypoints.shape[1:] == (10, 3)  # every object carries all K


def test_the_segmentation_model_masks_lie_in_their_boxes() -> None:
    model = get_model(TASK_MODELS["segment"])
    ((image, _, _),) = _frames("segment", 1, seed=9300)
    typed = model.predict(image, keep_masks=True)
    assert typed.detections.mask is not None and len(typed.detections.mask) > 0
    for mask, (x1, y1, x2, y2) in zip(typed.detections.mask, typed.detections.xyxy, strict=True):
        rows, cols = np.nonzero(mask)
        assert rows.size > 0
        assert cols.min() >= x1 - 1 and cols.max() <= x2 and rows.min() >= y1 - 1 and rows.max() <= y2


def test_the_classifier_scores_are_probabilities() -> None:
    model = get_model(TASK_MODELS["classify"])
    ((image, truth, _),) = _frames("classify", 1, seed=9400)
    result = model.infer(image, confidence=0.0)
    assert result["predictions"][0]["class"] == result["top"] == CLASS_NAMES[int(truth.class_ids[0])]
    assert abs(sum(p["confidence"] for p in result["predictions"]) - 1.0) < 0.01


@pytest.mark.parametrize(
    ("task", "figures"),
    [
        ("segment", ("precision", "recall", "mask_iou")),
        ("classify", ("top1",)),
        ("pose", ("precision", "recall", "pck")),
    ],
)
def test_demo_command_runs_each_task(task: str, figures: tuple[str, ...], tmp_path: Path) -> None:
    command = ["demo", "--task", task, "--seconds", "2", "--out", str(tmp_path), "--no-progress"]
    done = subprocess.run(
        [sys.executable, "-m", "framepipe", *command],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line and " " not in line)
    assert int(summary["frames"]) == 60 and float(summary["fps"]) > 0
    for name in figures:
        assert 0.5 <= float(summary[name]) <= 1.0, summary
    assert (tmp_path / "annotated.mp4").stat().st_size > 0
