"""Version 0 of a model whose task is known: that task's empty, well-formed answer, with the
task's parameters."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from framepipe.artifacts import parse_model_id
from framepipe.artifacts.stub import stub_artifacts
from framepipe.errors import ModelArtifactError
from framepipe.models import StubModel, load_model
from framepipe.models.params import InvalidParameterError

IMAGE = np.zeros((360, 640, 3), np.uint8)


def stub(task: str) -> StubModel:
    artifacts = stub_artifacts(parse_model_id("my-dataset/0"))
    return StubModel(replace(artifacts, model_type={"project_task_type": task, "model_type": "stub"}))


def test_classification_stub() -> None:
    model = stub("classification")
    assert model.infer(IMAGE) == {
        "image": {"width": 640, "height": 360},
        "predictions": [],
        "top": "",
        "confidence": 0.0,
    }


@pytest.mark.parametrize("task", ["instance-segmentation", "keypoint-detection", "object-detection"])
def test_box_task_stubs(task: str) -> None:
    model = stub(task)
    result = model.infer([IMAGE, np.zeros((100, 50, 3), np.uint8)])
    assert result == [
        {"image": {"width": 640, "height": 360}, "predictions": []},
        {"image": {"width": 50, "height": 100}, "predictions": []},
    ]
    assert len(sv.Detections.from_inference(result[0])) == 0
    assert model.predict(IMAGE).task == task


def test_stub_parameters_are_the_task_s() -> None:
    assert stub("instance-segmentation").infer(IMAGE, mask_decode_mode="fast")["predictions"] == []
    assert len(sv.KeyPoints.from_inference(stub("keypoint-detection").infer(IMAGE, keypoint_confidence=0.3))) == 0
    with pytest.raises(InvalidParameterError, match="mask_decode_mode"):
        stub("instance-segmentation").infer(IMAGE, mask_decode_mode="best")
    with pytest.raises(TypeError, match="mask_decode_mode"):
        stub("object-detection").infer(IMAGE, mask_decode_mode="fast")


def test_stub_of_a_task_framepipe_does_not_run() -> None:
    with pytest.raises(ModelArtifactError, match="semantic-segmentation"):
        stub("semantic-segmentation")


def test_loader_refuses_a_task_it_does_not_run(tmp_path: Path) -> None:
    from tests.onnx_models import model_folder

    folder = model_folder(
        tmp_path / "m", {"output0": np.zeros((2, 8), np.float32)}, ["a"], "unet", task_type="semantic-segmentation"
    )
    with pytest.raises(ModelArtifactError, match="'semantic-segmentation' model; framepipe runs object-detection"):
        load_model(str(folder))
