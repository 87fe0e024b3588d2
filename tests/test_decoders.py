"""Every output layout and resize mode, on real ONNX models run by onnxruntime.

The models (tests/onnx_models.py) return known raw tensors; the expected boxes in frame pixels
are worked out by hand in each test from the resize geometry.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto

from framepipe import InferencePipeline
from framepipe.errors import ModelArtifactError, UnsupportedModelOutputError
from framepipe.models import OnnxModel
from framepipe.models import load_model as load_any_model
from tests.onnx_models import build_model, model_folder

NAMES = ["cat", "dog", "bird"]


def load_model(path: str) -> OnnxModel:
    """The ONNX model at ``path`` (these tests look at its head, session and preprocessor)."""
    model = load_any_model(path)
    assert isinstance(model, OnnxModel)
    return model


def yolov8_raw() -> np.ndarray:
    """[4 + 3, 8]: one column per anchor: cx, cy, w, h, then the scores of cat, dog, bird."""
    columns = [
        [320, 320, 128, 64, 0.0, 0.9, 0.0],  # dog: input box 256, 288, 384, 352
        [322, 320, 128, 64, 0.0, 0.8, 0.0],  # the same dog again: NMS drops it
        [96, 256, 32, 64, 0.0, 0.0, 0.7],  # bird: 80, 224, 112, 288
        [50, 50, 10, 10, 0.1, 0.0, 0.0],  # below the confidence threshold
        [320, 80, 64, 40, 0.95, 0.0, 0.0],  # cat: 288, 60, 352, 100
        [320, 170, 64, 40, 0.6, 0.0, 0.0],  # cat: 288, 150, 352, 190
        [0, 0, 0, 0, 0.0, 0.0, 0.0],  # empty anchors, so that there are more anchors than channels
        [0, 0, 0, 0, 0.0, 0.0, 0.0],
    ]
    return np.array(columns, np.float32).T


def boxes_of(result: dict[str, Any]) -> list[tuple[str, list[float], float]]:
    return [
        (
            p["class"],
            [p["x"] - p["width"] / 2, p["y"] - p["height"] / 2, p["x"] + p["width"] / 2, p["y"] + p["height"] / 2],
            p["confidence"],
        )
        for p in result["predictions"]
    ]


def letterbox(fmt: str = "Fit (grey edges) in", width: int = 640, height: int = 640) -> dict:
    return {"resize": {"enabled": True, "format": fmt, "width": width, "height": height}}


def test_yolov8_letterbox_wide_frame(tmp_path: Path) -> None:
    model = load_model(str(model_folder(tmp_path / "m", {"output0": yolov8_raw()}, NAMES, "yolov8n", letterbox())))
    assert model.head.name == "yolov8" and model.input_size == (640, 640) and model.batch_size is None
    # 1000x500 fits as 640x320 with 160 px of padding above: x = x_in / 0.64, y = (y_in - 160) / 0.64
    result = model.infer(np.zeros((500, 1000, 3), np.uint8))
    assert result["image"] == {"width": 1000, "height": 500}
    assert boxes_of(result) == [
        ("dog", [400, 200, 600, 300], 0.9),
        ("bird", [125, 100, 175, 200], 0.7),
        # the 0.95 cat lies wholly in the padding; this one straddles the frame's top edge:
        # y from (150 - 160) / 0.64 < 0, clipped to 0, to (190 - 160) / 0.64 = 46.9
        ("cat", [450, 0, 550, 47], 0.6),
    ]


def test_yolov8_letterbox_portrait_frame(tmp_path: Path) -> None:
    model = load_model(str(model_folder(tmp_path / "m", {"output0": yolov8_raw()}, NAMES, "yolov8s", letterbox())))
    # 480x640 fits as 480x640 (scale 1) with 80 px of padding left and right: x = x_in - 80
    found = boxes_of(model.infer(np.zeros((640, 480, 3), np.uint8)))
    assert found[:2] == [("cat", [208, 60, 272, 100], 0.95), ("dog", [176, 288, 304, 352], 0.9)]


def test_yolov8_stretch(tmp_path: Path) -> None:
    pre = {"resize": {"enabled": True, "format": "Stretch to", "width": "640", "height": "640"}}
    model = load_model(str(model_folder(tmp_path / "m", {"output0": yolov8_raw()}, NAMES, "yolov8n", pre)))
    # 1000x500 stretched to 640x640: x = x_in / 0.64, y = y_in / 1.28, rounded to whole pixels
    assert boxes_of(model.infer(np.zeros((500, 1000, 3), np.uint8))) == [
        ("cat", [450, 47, 550, 78], 0.95),
        ("dog", [400, 225, 600, 275], 0.9),
        ("bird", [125, 175, 175, 225], 0.7),
        ("cat", [450, 117, 550, 148], 0.6),
    ]


def test_static_crop_then_letterbox(tmp_path: Path) -> None:
    pre = {
        **letterbox("Fit (black edges) in"),
        "static-crop": {"enabled": True, "x_min": 10, "y_min": 20, "x_max": 90, "y_max": 100},
    }
    model = load_model(str(model_folder(tmp_path / "m", {"output0": yolov8_raw()}, NAMES, "yolov8n", pre)))
    # 1000x500 cropped to x 100..900, y 100..500 (800x400), fitted as 640x320 with 160 px above:
    # x = x_in / 0.8 + 100, y = (y_in - 160) / 0.8 + 100
    result = model.infer(np.zeros((500, 1000, 3), np.uint8))
    assert result["image"] == {"width": 1000, "height": 500}
    assert boxes_of(result)[0] == ("dog", [420, 260, 580, 340], 0.9)
    assert boxes_of(result)[2] == ("cat", [460, 100, 540, 138], 0.6)  # clipped to the crop's top edge


@pytest.mark.parametrize(
    ("fmt", "pad"), [("Fit (black edges) in", 0.0), ("Fit (white edges) in", 1.0), ("Fit (grey edges) in", 114 / 255)]
)
def test_letterbox_padding_colours(tmp_path: Path, fmt: str, pad: float) -> None:
    model = load_model(str(model_folder(tmp_path / "m", {"output0": yolov8_raw()}, NAMES, "yolov8n", letterbox(fmt))))
    frame = np.full((500, 1000, 3), 200, np.uint8)
    tensor, geometries = model.preprocess([frame])
    assert geometries[0].pad_y == 160
    assert np.allclose(tensor[0, :, :160], pad) and np.allclose(tensor[0, :, 480:], pad)
    assert np.allclose(tensor[0, :, 160:480], 200 / 255)


def test_tensor_is_rgb_in_zero_to_one(tmp_path: Path) -> None:
    model = load_model(str(model_folder(tmp_path / "m", {"output0": yolov8_raw()}, NAMES, "yolov8n")))
    frame = np.zeros((64, 64, 3), np.uint8)
    frame[..., 2] = 255  # red in BGR
    tensor, _ = model.preprocess([frame])
    assert tensor.dtype == np.float32 and tensor.shape == (1, 3, 640, 640)
    assert np.allclose(tensor[0, 0], 1.0) and np.allclose(tensor[0, 1:], 0.0)


def test_grayscale_and_contrast_preprocessing(tmp_path: Path) -> None:
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[..., 0] = np.linspace(100, 150, 200, dtype=np.uint8)  # a blue ramp: no grey pixels
    pre = {**letterbox("Stretch to", 200, 100), "grayscale": {"enabled": True}}
    gray = load_model(str(model_folder(tmp_path / "g", {"output0": yolov8_raw()}, NAMES, "yolov8n", pre)))
    canvas, _ = gray.preprocessor.prepare(frame)
    assert (canvas[..., 0] == canvas[..., 1]).all() and (canvas[..., 1] == canvas[..., 2]).all()
    ramp = np.repeat(np.linspace(100, 150, 200, dtype=np.uint8)[None, :, None], 3, axis=2).repeat(100, axis=0)
    # a ramp of 50 grey levels: stretching and equalisation spread it over the whole range, CLAHE
    # (clip-limited by design) at least widens it
    for kind, least in (("Contrast Stretching", 250), ("Histogram Equalization", 250), ("Adaptive Equalization", 70)):
        pre = {**letterbox("Stretch to", 200, 100), "contrast": {"enabled": True, "type": kind}}
        model = load_model(str(model_folder(tmp_path / kind.split()[0], {"output0": yolov8_raw()}, NAMES, "v8", pre)))
        canvas, _ = model.preprocessor.prepare(ramp)
        spread = int(canvas.max()) - int(canvas.min())
        assert spread >= least, (kind, spread)


def test_yolov5_objectness_times_class(tmp_path: Path) -> None:
    rows = np.array(
        [
            [320, 320, 128, 64, 0.9, 0.1, 0.95, 0.0],  # dog: 0.9 x 0.95 = 0.855
            [100, 100, 20, 20, 0.5, 0.9, 0.1, 0.0],  # cat: 0.45
            [200, 200, 20, 20, 0.9, 0.3, 0.3, 0.3],  # 0.27: dropped
        ],
        np.float32,
    )
    folder = model_folder(tmp_path / "m", {"output0": rows}, NAMES, "yolov5v2s", letterbox("Stretch to"))
    (folder / "weights.onnx").rename(folder / "yolov5s_weights.onnx")  # Roboflow's YOLOv5 file name
    model = load_model(str(folder))
    assert model.head.name == "yolov5"
    found = boxes_of(model.infer(np.zeros((640, 640, 3), np.uint8)))
    assert [(c, b) for c, b, _ in found] == [("dog", [256, 288, 384, 352]), ("cat", [90, 90, 110, 110])]
    assert [s for _, _, s in found] == pytest.approx([0.855, 0.45])


def test_end_to_end_layout_skips_nms(tmp_path: Path) -> None:
    rows = np.array(
        [
            [100, 100, 200, 200, 0.9, 2],
            [110, 100, 210, 200, 0.85, 2],  # overlaps the first: kept, the model already did NMS
            [300, 300, 400, 400, 0.3, 0],  # below confidence
        ],
        np.float32,
    )
    model = load_model(str(model_folder(tmp_path / "m", {"output0": rows}, NAMES, "yolov10n", letterbox("Stretch to"))))
    assert model.head.name == "end-to-end"
    found = boxes_of(model.infer(np.zeros((320, 320, 3), np.uint8)))  # 320 -> 640: everything halves
    assert found == [("bird", [50, 50, 100, 100], 0.9), ("bird", [55, 50, 105, 100], 0.85)]


def test_yolo_nas_two_outputs(tmp_path: Path) -> None:
    boxes = np.array([[256, 288, 384, 352], [258, 288, 386, 352], [10, 10, 50, 50]], np.float32)
    scores = np.array([[0.0, 0.9, 0.1], [0.0, 0.7, 0.0], [0.1, 0.0, 0.2]], np.float32)
    outputs = {"boxes": boxes, "scores": scores}
    model = load_model(str(model_folder(tmp_path / "m", outputs, NAMES, "yolo_nas_s", letterbox("Stretch to"))))
    assert model.head.name == "yolo-nas"
    assert boxes_of(model.infer(np.zeros((640, 640, 3), np.uint8))) == [("dog", [256, 288, 384, 352], 0.9)]


def test_rfdetr_sigmoid_topk_normalised_boxes_and_background_class(tmp_path: Path) -> None:
    names = ["cat", "background_class83422", "dog"]
    dets = np.array([[0.5, 0.5, 0.25, 0.5], [0.2, 0.2, 0.1, 0.1], [0.25, 0.75, 0.1, 0.1]], np.float32)
    logits = np.array([[-9, -9, 3.0], [-9, 4.0, -9], [1.0, -9, -9]], np.float32)  # dog, background, cat
    pre = {"resize": {"enabled": True, "format": "Stretch to", "width": 560, "height": 560}}
    folder = model_folder(
        tmp_path / "m", {"dets": dets, "labels": logits}, names, "rfdetr-base", pre, input_hw=(560, 560)
    )
    model = load_model(str(folder))
    assert model.head.name == "rf-detr" and model.class_names == ["cat", "dog"]
    # 1120x560 stretched to 560x560: x * 2, y * 1; boxes are not rounded
    result = model.infer(np.zeros((560, 1120, 3), np.uint8))
    found = boxes_of(result)
    assert [c for c, _, _ in found] == ["dog", "cat"]
    assert found[0][1] == pytest.approx([420, 140, 700, 420])
    assert found[0][2] == pytest.approx(1 / (1 + np.exp(-3.0)), abs=1e-4)
    assert found[1][1] == pytest.approx([224, 392, 336, 448])
    assert [p["class_id"] for p in result["predictions"]] == [1, 0]
    # RF-DETR inputs are normalised with ImageNet's mean and std
    tensor, _ = model.preprocess([np.zeros((560, 560, 3), np.uint8)])
    assert np.allclose(tensor[0, 0], -0.485 / 0.229, atol=1e-4)


def test_ultralytics_onnx_alone_uses_its_metadata(tmp_path: Path) -> None:
    metadata = {"names": "{0: 'cat', 1: 'dog', 2: 'bird'}", "imgsz": "[480, 640]", "task": "detect", "stride": "32"}
    path = build_model(
        tmp_path / "yolo.onnx", {"output0": yolov8_raw()}, input_hw=("height", "width"), metadata=metadata
    )
    model = load_model(str(path))
    assert model.class_names == NAMES and model.input_size == (640, 480) and model.head.name == "yolov8"
    # letterbox with grey edges, as Ultralytics: a 640x480 frame fits exactly
    tensor, _ = model.preprocess([np.zeros((480, 640, 3), np.uint8)])
    assert tensor.shape == (1, 3, 480, 640)
    assert boxes_of(model.infer(np.zeros((480, 640, 3), np.uint8)))[0] == ("cat", [288, 60, 352, 100], 0.95)


def test_unknown_output_layout_names_the_shapes(tmp_path: Path) -> None:
    path = build_model(tmp_path / "odd.onnx", {"logits": np.zeros((7,)), "embedding": np.zeros((3, 3))})
    with pytest.raises(UnsupportedModelOutputError, match=r"logits \['batch', 7\].*embedding \['batch', 3, 3\]"):
        load_model(str(path))


def test_model_type_that_contradicts_the_outputs(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "m", {"output0": yolov8_raw()}, NAMES, "rfdetr-base")
    with pytest.raises(UnsupportedModelOutputError, match="rfdetr-base"):
        load_model(str(folder))


def test_bad_environment_files(tmp_path: Path) -> None:
    folder = model_folder(
        tmp_path / "m", {"output0": yolov8_raw()}, NAMES, "yolov8n", letterbox("Fit (rainbow edges) in")
    )
    with pytest.raises(ModelArtifactError, match=r"environment\.json.*resize\.format 'Fit \(rainbow edges\) in'"):
        load_model(str(folder))
    pre = {"static-crop": {"enabled": True, "x_min": 10, "y_min": 0, "x_max": 140, "y_max": 100}}
    (folder / "environment.json").write_text(json.dumps({"PREPROCESSING": json.dumps(pre)}))
    with pytest.raises(ModelArtifactError, match=r"static-crop\.x_max must be between 0 and 100"):
        load_model(str(folder))
    (folder / "environment.json").unlink()
    with pytest.raises(ModelArtifactError, match=r"environment\.json is missing"):
        load_model(str(folder))


class CountingSession:
    """Wraps a real onnxruntime session and records the batch size of every run."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.batches: list[int] = []

    def run(self, names: Any, feed: dict[str, np.ndarray]) -> Any:
        self.batches.append(next(iter(feed.values())).shape[0])
        return self._session.run(names, feed)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def test_dynamic_batch_runs_once_static_batch_in_chunks(tmp_path: Path) -> None:
    dynamic = load_model(str(model_folder(tmp_path / "d", {"output0": yolov8_raw()}, NAMES, "yolov8n")))
    dynamic.session = counting = CountingSession(dynamic.session)
    results = dynamic.infer([np.zeros((100, 100, 3), np.uint8)] * 4)
    limit = dynamic.max_batch_size  # 2 on the CPU, 16 on a GPU: as few runs as that allows
    assert dynamic.provider != "CPUExecutionProvider" or limit == 2
    assert counting.batches == [min(4, limit)] * -(-4 // limit) and len(results) == 4
    static = load_model(str(model_folder(tmp_path / "s", {"output0": yolov8_raw()}, NAMES, "yolov8n", batch=2)))
    assert static.batch_size == 2
    static.session = counting = CountingSession(static.session)
    results = static.infer([np.zeros((100, 100, 3), np.uint8)] * 3)
    assert counting.batches == [2, 2] and len(results) == 3  # the last chunk is padded
    assert all(r["predictions"][0]["class"] == "cat" for r in results)


def test_static_batch_model_in_a_batched_pipeline(tmp_path: Path, clip) -> None:
    folder = model_folder(tmp_path / "s", {"output0": yolov8_raw()}, NAMES, "yolov8n", batch=1)
    received: list[tuple[list[Any], list[Any]]] = []
    pipeline = InferencePipeline.init(
        [clip.video_path, clip.video_path], str(folder), lambda p, f: received.append((p, f))
    )
    pipeline.start()
    pipeline.join()
    frames = [f for _, fs in received for f in fs if f is not None]
    assert len(frames) == 2 * clip.frames
    # a source with no frame in a batch (the other one ran ahead) has None for both
    pairs = [(p, f) for ps, fs in received for p, f in zip(ps, fs, strict=True)]
    assert all((p is None) == (f is None) for p, f in pairs)
    assert all(p["predictions"] for p, f in pairs if f is not None)


def test_float16_input_and_io_binding_path(tmp_path: Path) -> None:
    path = build_model(tmp_path / "fp16.onnx", {"output0": yolov8_raw()}, input_type=TensorProto.FLOAT16)
    model = load_model(str(path))
    tensor, _ = model.preprocess([np.zeros((640, 640, 3), np.uint8)])
    assert tensor.dtype == np.float16
    plain = model.infer(np.zeros((640, 640, 3), np.uint8))
    model.use_io_binding = True  # the CUDA path; IOBinding works on CPU too, so it can be checked here
    bound = model.infer(np.zeros((640, 640, 3), np.uint8))
    assert boxes_of(plain) == boxes_of(bound) and len(bound["predictions"]) == 4


def test_class_filter_and_agnostic_nms(tmp_path: Path) -> None:
    raw = yolov8_raw()
    raw[5:, 1] = [0.0, 0.0]
    raw[4, 1] = 0.8  # the second dog is now a cat on the same spot
    model = load_model(str(model_folder(tmp_path / "m", {"output0": raw}, NAMES, "yolov8n", letterbox("Stretch to"))))
    frame = np.zeros((640, 640, 3), np.uint8)
    per_class = [c for c, _, _ in boxes_of(model.infer(frame))]
    agnostic = [c for c, _, _ in boxes_of(model.infer(frame, class_agnostic_nms=True))]
    assert per_class.count("cat") == 3 and agnostic.count("cat") == 2  # the overlapping cat is suppressed by the dog
    assert {c for c, _, _ in boxes_of(model.infer(frame, class_filter=["bird"]))} == {"bird"}
    with pytest.raises(TypeError, match="unknown inference parameters"):
        model.infer(frame, confidense=0.5)


def test_decoder_choice_is_logged(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="framepipe.models")
    path = build_model(tmp_path / "bare.onnx", {"output0": yolov8_raw()})
    model = load_model(str(path))
    assert model.class_names == ["class_0", "class_1", "class_2"]
    assert any("yolov8 decoder, chosen by output shapes" in r.getMessage() for r in caplog.records)


def test_reused_buffers_give_the_tensor_of_a_fresh_preprocessor() -> None:
    """The padding of a reused slot is written once per frame size: every later frame, of the same
    size or not, must still give exactly what a new preprocessor gives."""
    from framepipe.models.environment import PreprocessingConfig
    from framepipe.models.preprocess import Preprocessor

    config = PreprocessingConfig(resize_format="Fit (grey edges) in", size=(64, 48))
    rng = np.random.default_rng(7)
    reused = Preprocessor(config, (64, 48), mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    sizes = [(36, 80), (36, 80), (90, 40), (36, 80), (48, 64)]  # wide, wide again, tall, wide, exact
    for height, width in sizes:
        batch = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(2)]
        fresh = Preprocessor(config, (64, 48), mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
        expected, _ = fresh(batch)
        got, _ = reused(batch)
        np.testing.assert_array_equal(got, expected)
