"""Classification models (YOLOv8-cls, ResNet, ViT) on real ONNX graphs run by onnxruntime: the
scores, the softmax rule, each family's normalisation, multi-label and Roboflow's JSON."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from framepipe.errors import ModelArtifactError
from framepipe.models import OnnxModel, load_model
from framepipe.predictions import Classification, FramePrediction
from tests.onnx_models import build_model, model_folder

NAMES = ["cat", "dog", "bird"]
STRETCH = {"resize": {"enabled": True, "format": "Stretch to", "width": 224, "height": 224}}


def classifier(tmp_path: Path, scores: list[float], model_type: str = "yolov8n", **kwargs) -> OnnxModel:
    folder = model_folder(
        tmp_path / model_type,
        {"output0": np.array(scores, np.float32)},
        NAMES,
        model_type,
        STRETCH,
        input_hw=(224, 224),
        task_type="classification",
        **kwargs,
    )
    model = load_model(str(folder))
    assert isinstance(model, OnnxModel)
    return model


def scores_of(typed: FramePrediction) -> np.ndarray:
    assert typed.classification is not None
    return typed.classification.confidence


def softmax(values: list[float]) -> list[float]:
    exps = [float(np.exp(v - max(values))) for v in values]
    return [e / sum(exps) for e in exps]


def test_logits_get_softmax_and_roboflow_json(tmp_path: Path) -> None:
    model = classifier(tmp_path, [1.0, 3.0, 2.0])
    assert model.task_type == "classification" and model.head.task == "classification"
    result = model.infer(np.zeros((300, 500, 3), np.uint8), confidence=0.2)
    expected = softmax([1.0, 3.0, 2.0])  # 0.090, 0.665, 0.245
    assert result["image"] == {"width": 500, "height": 300}
    assert result["top"] == "dog" and result["confidence"] == round(expected[1], 4)
    # sorted by confidence, the cat (0.09) below the request's confidence left out
    assert result["predictions"] == [
        {"class": "dog", "class_id": 1, "confidence": round(expected[1], 4)},
        {"class": "bird", "class_id": 2, "confidence": round(expected[2], 4)},
    ]
    typed = model.predict(np.zeros((300, 500, 3), np.uint8))
    assert isinstance(typed.classification, Classification)
    assert np.allclose(scores_of(typed), expected, atol=1e-6)


def test_a_graph_ending_in_softmax_is_not_softmaxed_again(tmp_path: Path) -> None:
    model = classifier(tmp_path, [0.1, 0.2, 0.7])
    result = model.infer(np.zeros((100, 100, 3), np.uint8), confidence=0.0)
    assert [p["confidence"] for p in result["predictions"]] == [0.7, 0.2, 0.1]
    assert result["top"] == "bird"


def test_negative_scores_summing_to_one_are_logits(tmp_path: Path) -> None:
    model = classifier(tmp_path, [-0.5, 1.0, 0.5])  # sums to 1 but is not a distribution
    typed = model.predict(np.zeros((100, 100, 3), np.uint8))
    assert np.allclose(scores_of(typed), softmax([-0.5, 1.0, 0.5]), atol=1e-6)


def test_multilabel_from_environment(tmp_path: Path) -> None:
    model = classifier(tmp_path, [0.9, 0.3, 0.6], environment_extra={"MULTICLASS": True})
    result = model.infer(np.zeros((100, 100, 3), np.uint8), confidence=0.5)
    assert result["predictions"] == {
        "cat": {"confidence": 0.9, "class_id": 0},
        "dog": {"confidence": 0.3, "class_id": 1},
        "bird": {"confidence": 0.6, "class_id": 2},
    }
    assert result["predicted_classes"] == ["cat", "bird"]
    assert "top" not in result


def test_multilabel_logits_get_the_sigmoid(tmp_path: Path) -> None:
    model = classifier(tmp_path, [2.0, -1.0, 0.0], environment_extra={"MULTICLASS": "true"})
    typed = model.predict(np.zeros((100, 100, 3), np.uint8), confidence=0.6)
    expected = [1 / (1 + np.exp(-v)) for v in (2.0, -1.0, 0.0)]  # 0.881, 0.269, 0.5
    assert np.allclose(scores_of(typed), expected, atol=1e-6)
    assert model.infer(np.zeros((100, 100, 3), np.uint8), confidence=0.6)["predicted_classes"] == ["cat"]


@pytest.mark.parametrize(
    ("model_type", "mean", "std"),
    [
        ("yolov8s", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ("vit", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ("resnet50", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ],
)
def test_normalisation_per_family(tmp_path: Path, model_type: str, mean: tuple, std: tuple) -> None:
    model = classifier(tmp_path, [0.0, 1.0, 0.0], model_type)
    frame = np.empty((50, 80, 3), np.uint8)
    frame[...] = (10, 100, 200)  # BGR
    tensor, _ = model.preprocess([frame])
    for channel, value in enumerate((200, 100, 10)):  # RGB
        assert np.allclose(tensor[0, channel], (value / 255 - mean[channel]) / std[channel], atol=1e-5)


def test_bare_ultralytics_classifier_is_not_normalised(tmp_path: Path) -> None:
    metadata = {"task": "classify", "names": "{0: 'cat', 1: 'dog', 2: 'bird'}", "imgsz": "[224, 224]"}
    path = build_model(
        tmp_path / "cls.onnx", {"output0": np.array([0.2, 0.5, 0.3], np.float32)}, (224, 224), metadata=metadata
    )
    model = load_model(str(path))
    assert isinstance(model, OnnxModel) and model.task_type == "classification"
    tensor, _ = model.preprocess([np.full((224, 224, 3), 51, np.uint8)])
    assert np.allclose(tensor, 0.2)
    assert model.infer(np.zeros((224, 224, 3), np.uint8))["top"] == "dog"


def test_class_count_differing_from_class_names(tmp_path: Path) -> None:
    folder = model_folder(
        tmp_path / "m",
        {"output0": np.zeros(5, np.float32)},
        NAMES,
        "resnet18",
        STRETCH,
        (224, 224),
        task_type="classification",
    )
    with pytest.raises(ModelArtifactError, match="5 classes but 3 class names"):
        load_model(str(folder))


def test_unknown_parameter_still_raises(tmp_path: Path) -> None:
    model = classifier(tmp_path, [0.0, 1.0, 0.0])
    with pytest.raises(TypeError, match="mask_decode_mode"):
        model.infer(np.zeros((100, 100, 3), np.uint8), mask_decode_mode="fast")


def test_classification_to_supervision(tmp_path: Path) -> None:
    from framepipe.predictions.supervision import to_classifications

    typed = classifier(tmp_path, [0.1, 0.2, 0.7]).predict(np.zeros((100, 100, 3), np.uint8))
    found = to_classifications(typed)
    assert found.get_top_k(1)[0].tolist() == [2]
    assert np.allclose(np.asarray(found.confidence), [0.1, 0.2, 0.7])
