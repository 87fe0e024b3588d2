"""The bundled model, model ids, ONNX Runtime sessions, preprocessing, decoding and NMS."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
import supervision as sv

from framepipe.artifacts import bundled_model_ids, resolve_model
from framepipe.demo.evaluate import Score, match_frame, prediction_arrays
from framepipe.demo.scenes import CLASS_NAMES, random_scene
from framepipe.errors import (
    ExecutionProviderError,
    InvalidModelIdError,
    ModelArtifactError,
    ModelLoadError,
    ModelNotFoundError,
)
from framepipe.models import create_session, get_model
from framepipe.models.nms import non_max_suppression
from framepipe.models.preprocess import letterbox, letterbox_geometry, stretch

MODEL_ID = "framepipe-shapes/1"


@pytest.fixture(scope="module")
def model():
    return get_model(MODEL_ID)


def test_bundled_model_has_roboflow_layout() -> None:
    artifacts = resolve_model(MODEL_ID)
    assert MODEL_ID in bundled_model_ids()
    names = {p.name for p in artifacts.folder.iterdir()}
    assert {"weights.onnx", "environment.json", "class_names.txt", "model_type.json"} <= names
    assert artifacts.weights_path.stat().st_size < 5 * 1024 * 1024
    assert artifacts.class_names == list(CLASS_NAMES)
    assert artifacts.model_type is not None and artifacts.model_type["project_task_type"] == "object-detection"
    raw = json.loads((artifacts.folder / "environment.json").read_text())
    assert isinstance(raw["PREPROCESSING"], str)  # Roboflow stores it as a JSON string
    assert artifacts.environment["PREPROCESSING"]["resize"]["format"] == "Fit (grey edges) in"
    assert set(raw["CLASS_MAP"].values()) == set(CLASS_NAMES) and set(raw["COLORS"]) == set(CLASS_NAMES)


def test_bundled_onnx_is_yolov8_layout_with_dynamic_batch() -> None:
    import onnx

    proto = onnx.load(str(resolve_model(MODEL_ID).weights_path))
    assert proto.ir_version <= 10
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) <= 17
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param  # symbolic: dynamic batch
    out_dims = proto.graph.output[0].type.tensor_type.shape.dim
    assert out_dims[1].dim_value == 4 + len(CLASS_NAMES)
    metadata = {p.key: p.value for p in proto.metadata_props}
    assert metadata["task"] == "detect" and "circle" in metadata["names"]


def test_model_detects_shapes_in_scenes(model) -> None:
    score = Score()
    rng = np.random.default_rng(99)
    for _ in range(12):
        image, truth = random_scene(640, 360, rng, count=(3, 8))
        result = model.infer(image)
        match_frame(*prediction_arrays(result), truth, score)
    assert score.true_positives > 30
    assert score.precision >= 0.9, score
    assert score.recall >= 0.9, score


def test_infer_single_and_list_and_supervision(model) -> None:
    image, _ = random_scene(480, 320, np.random.default_rng(5), count=(4, 4))
    single = model.infer(image)
    assert single["image"] == {"width": 480, "height": 320}
    batch = model.infer([image, image[:, ::-1].copy()])
    assert isinstance(batch, list) and len(batch) == 2
    assert [p["class"] for p in batch[0]["predictions"]] == [p["class"] for p in single["predictions"]]
    prediction = single["predictions"][0]
    assert {"x", "y", "width", "height", "confidence", "class", "class_id", "detection_id"} <= set(prediction)
    detections = sv.Detections.from_inference(single)
    assert len(detections) == len(single["predictions"])
    assert detections.data["class_name"][0] == prediction["class"]
    assert np.allclose(
        detections.xyxy[0],
        [
            prediction["x"] - prediction["width"] / 2,
            prediction["y"] - prediction["height"] / 2,
            prediction["x"] + prediction["width"] / 2,
            prediction["y"] + prediction["height"] / 2,
        ],
    )


def test_confidence_and_max_detections_are_honoured(model) -> None:
    image, _ = random_scene(640, 360, np.random.default_rng(7), count=(8, 8))
    loose = model.infer(image, confidence=0.05)["predictions"]
    strict = model.infer(image, confidence=0.8)["predictions"]
    capped = model.infer(image, confidence=0.05, max_detections=2)["predictions"]
    assert len(strict) <= len(loose)
    assert all(p["confidence"] >= 0.8 for p in strict)
    assert len(capped) == 2
    assert [p["confidence"] for p in capped] == sorted((p["confidence"] for p in loose), reverse=True)[:2]


def test_unknown_and_invalid_model_ids(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match=r"no-such-model/7.*not in the model cache"):
        get_model("no-such-model/7")
    for bad in ("no-slash", "a/b/c/../d", "../etc/1", "a/..", ".hidden/1"):
        with pytest.raises((InvalidModelIdError, ModelNotFoundError)):
            resolve_model(bad)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        get_model(str(tmp_path / "missing.onnx"))


def test_model_from_cache_folder_and_from_onnx_path(tmp_path, monkeypatch) -> None:
    source = resolve_model(MODEL_ID).folder
    cached = tmp_path / "my-shapes" / "3"
    shutil.copytree(source, cached)
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path))
    assert get_model("my-shapes/3").class_names == list(CLASS_NAMES)
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copy(source / "weights.onnx", lonely / "detector.onnx")
    # no side files: class names come from the ONNX metadata
    assert get_model(str(lonely / "detector.onnx")).class_names == list(CLASS_NAMES)


def test_broken_model_files_raise_specific_errors(tmp_path) -> None:
    source = resolve_model(MODEL_ID).folder
    folder = tmp_path / "broken"
    shutil.copytree(source, folder)
    (folder / "environment.json").write_text('{"PREPROCESSING": "{not json"}')
    with pytest.raises(ModelArtifactError, match="PREPROCESSING"):
        get_model(str(folder))
    shutil.copy(source / "environment.json", folder / "environment.json")
    (folder / "class_names.txt").write_text("a\nb\n")
    with pytest.raises(ModelArtifactError, match="4 classes but 2 class names"):
        get_model(str(folder))
    shutil.copy(source / "class_names.txt", folder / "class_names.txt")
    (folder / "model_type.json").write_text('{"model_type": "yolov8n"}')
    with pytest.raises(ModelArtifactError, match="project_task_type"):
        get_model(str(folder))
    shutil.copy(source / "model_type.json", folder / "model_type.json")
    data = (source / "weights.onnx").read_bytes()
    (folder / "weights.onnx").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelLoadError, match="could not load"):
        get_model(str(folder))


def test_session_probe_ends_on_cpu_with_one_log_line(caplog) -> None:
    # No GPU exists on this machine: onnxruntime-gpu lists CUDA, the probe must skip it quietly.
    caplog.set_level(logging.INFO, logger="framepipe.models")
    session = create_session(resolve_model(MODEL_ID).weights_path)
    assert session.get_providers()[0] == "CPUExecutionProvider"
    lines = [r.getMessage() for r in caplog.records if "ONNX Runtime runs on" in r.getMessage()]
    assert len(lines) == 1 and "CPUExecutionProvider" in lines[0]


def test_explicitly_required_unavailable_provider_raises() -> None:
    with pytest.raises(ExecutionProviderError, match="CUDAExecutionProvider"):
        create_session(
            resolve_model(MODEL_ID).weights_path, providers=["CUDAExecutionProvider", "CPUExecutionProvider"]
        )


def test_letterbox_geometry_round_trips_boxes() -> None:
    image = np.zeros((300, 500, 3), np.uint8)
    canvas, geometry = letterbox(image, 320, 320, (114, 114, 114))
    assert canvas.shape == (320, 320, 3)
    assert geometry == letterbox_geometry(500, 300, 320, 320)
    assert geometry.pad_x == 0 and geometry.pad_y == (320 - 192) // 2
    assert (canvas[: geometry.pad_y] == 114).all() and (canvas[geometry.pad_y + 192 :] == 114).all()
    boxes = np.array([[10, 20, 110, 220], [0, 0, 500, 300]], np.float32)
    model_space = boxes.copy()
    model_space[:, [0, 2]] = boxes[:, [0, 2]] * geometry.scale_x + geometry.pad_x
    model_space[:, [1, 3]] = boxes[:, [1, 3]] * geometry.scale_y + geometry.pad_y
    assert np.allclose(geometry.to_source(model_space), boxes, atol=1e-3)
    _, stretched = stretch(image, 320, 320)
    assert stretched.scale_x == pytest.approx(320 / 500) and stretched.scale_y == pytest.approx(320 / 300)


def test_nms_per_class_and_agnostic() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.8, 0.85, 0.5])
    classes = np.array([0, 0, 1, 0])
    assert non_max_suppression(boxes, scores, 0.5, classes).tolist() == [0, 2, 3]
    assert non_max_suppression(boxes, scores, 0.5).tolist() == [0, 3]
    assert non_max_suppression(boxes, scores, 0.5, classes, max_detections=2).tolist() == [0, 2]
    assert non_max_suppression(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


@pytest.mark.parametrize("per_class", [False, True])
def test_nms_agrees_with_supervision_on_random_boxes(per_class: bool) -> None:
    rng = np.random.default_rng(1 if per_class else 0)
    for _ in range(150):  # 300 random box sets in all
        n = int(rng.integers(1, 60))
        xy = rng.uniform(0, 200, (n, 2))
        wh = rng.uniform(2, 80, (n, 2))
        boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
        scores = rng.uniform(0, 1, n)
        classes = rng.integers(0, 3, n)
        threshold = float(rng.uniform(0.1, 0.9))
        ours = non_max_suppression(boxes, scores, threshold, classes if per_class else None)
        columns: list[np.ndarray] = [boxes, scores[:, None]]
        if per_class:
            columns.append(classes[:, None])
        theirs = np.flatnonzero(sv.box_non_max_suppression(np.concatenate(columns, axis=1), threshold))
        assert sorted(ours.tolist()) == theirs.tolist()
        assert ours.tolist() == sorted(ours.tolist(), key=lambda i: -scores[i])  # best first


def test_providers_from_roboflow_environment_variable(monkeypatch, caplog) -> None:
    # No GPU exists here: the variable's CUDA entry is skipped with its reason, CPU runs.
    monkeypatch.setenv("ONNXRUNTIME_EXECUTION_PROVIDERS", "[CUDAExecutionProvider, 'CPUExecutionProvider']")
    caplog.set_level(logging.INFO, logger="framepipe.models")
    session = create_session(resolve_model(MODEL_ID).weights_path)
    assert session.get_providers() == ["CPUExecutionProvider"]
    line = next(r.getMessage() for r in caplog.records if "ONNX Runtime runs on" in r.getMessage())
    assert "CUDAExecutionProvider: no NVIDIA driver" in line


def test_required_provider_missing_from_the_build(monkeypatch) -> None:
    monkeypatch.setenv("REQUIRED_ONNX_PROVIDERS", "OpenVINOExecutionProvider")
    with pytest.raises(ExecutionProviderError, match="OpenVINOExecutionProvider"):
        create_session(resolve_model(MODEL_ID).weights_path)


def test_session_settings(tmp_path) -> None:
    from framepipe.models.session import SessionSettings

    weights = resolve_model(MODEL_ID).weights_path
    session = create_session(weights, settings=SessionSettings(intra_op_threads=1, optimisation="basic"))
    assert session.get_session_options().intra_op_num_threads == 1
    with pytest.raises(ValueError, match="optimisation"):
        SessionSettings(optimisation="max")


def test_get_model_shares_one_loaded_model() -> None:
    from framepipe.models import DEFAULT_MANAGER, ModelManager, load_model

    first = get_model(MODEL_ID)
    assert get_model(MODEL_ID) is first
    assert get_model(MODEL_ID, intra_op_threads=1, workload="throughput") is first  # thread settings: one session
    assert (MODEL_ID, None) in DEFAULT_MANAGER
    manager: ModelManager = ModelManager(lambda model_id: load_model(model_id), max_models=1)
    a = manager.get(MODEL_ID)
    manager.get("other", loader=lambda: first)
    assert MODEL_ID not in manager and len(manager) == 1  # least recently used went first
    assert manager.get(MODEL_ID) is a  # still referenced here, so found again, not loaded twice
    assert manager.loads == 2
