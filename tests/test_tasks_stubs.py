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


def test_stub_takes_the_task_of_a_version_already_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from framepipe.models import get_model
    from tests.onnx_models import model_folder

    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path))
    assert get_model("ants/0").task_type == "object-detection"  # nothing known of "ants": Roboflow's default
    scores = {"output0": np.array([0.2, 0.8], np.float32)}
    model_folder(tmp_path / "ants" / "3", scores, ["a", "b"], "vit", task_type="classification")
    (tmp_path / "ants" / "7").mkdir()
    (tmp_path / "ants" / "7" / "model_type.json").write_text("{broken")  # a damaged version is passed over
    stubbed = load_model("ants/0")
    assert stubbed.task_type == "classification"
    assert stubbed.infer(IMAGE) == {
        "image": {"width": 640, "height": 360},
        "predictions": [],
        "top": "",
        "confidence": 0.0,
    }


def test_resnet_and_vit_weights_are_best_onnx(tmp_path: Path) -> None:
    import shutil

    from framepipe.artifacts import fetch_model
    from framepipe.artifacts.layout import weights_file_for
    from framepipe.artifacts.registry_folder import add_model
    from tests.artifacts_support import settings_for, start_server
    from tests.onnx_models import model_folder

    assert [weights_file_for(t) for t in ("resnet50", "vit", "yolov8n-cls", "yolov5v2s")] == [
        "best.onnx",
        "best.onnx",
        "weights.onnx",
        "yolov5s_weights.onnx",
    ]
    scores = {"output0": np.array([0.1, 0.9], np.float32)}
    folder = model_folder(tmp_path / "resnet", scores, ["cat", "dog"], "resnet18", task_type="classification")
    shutil.move(folder / "weights.onnx", folder / "best.onnx")  # Roboflow's name for ResNet weights
    assert load_model(str(folder)).infer(IMAGE)["top"] == "dog"
    export = tmp_path / "export"
    export.mkdir()
    shutil.copy(folder / "best.onnx", export / "model.onnx")
    root = tmp_path / "registry"
    added = add_model(root, export / "model.onnx", "pets/2", task_type="classification", model_type="resnet18")
    (added / "class_names.txt").write_text("cat\ndog\n")
    assert (added / "best.onnx").is_file() and not (added / "weights.onnx").exists()
    server = start_server(root)
    try:
        result = fetch_model("pets/2", cache_dir=tmp_path / "cache", settings=settings_for(server))
    finally:
        server.stop()
    assert (result.folder / "best.onnx").is_file()
    assert load_model(str(result.folder)).infer(IMAGE)["top"] == "dog"
