"""The head registry: built-in heads come from their own modules, a new layout is one new module,
and Ultralytics exports with dynamic shapes load as plain ``.onnx`` paths."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

import numpy as np
import pytest

import framepipe.models.heads as heads_package
from framepipe.errors import ModelArtifactError, UnsupportedModelOutputError
from framepipe.models import OnnxModel, load_model
from framepipe.models.heads import OutputSpec, choose_head, heads, unregister_head
from tests.onnx_models import build_model, model_folder
from tests.test_decoders import NAMES, boxes_of, yolov8_raw


def test_every_head_module_registers_itself() -> None:
    modules = {m.name for m in pkgutil.iter_modules(heads_package.__path__)} - {"base", "registry"}
    registered = {type(h).__module__.rsplit(".", 1)[1] for h in heads() if type(h).__module__.startswith("framepipe.")}
    assert registered == modules  # each layout lives in one module, found without a list to keep
    assert {h.name for h in heads()} >= {"yolov5", "yolov8", "end-to-end", "yolo-nas", "rf-detr"}


def test_a_new_layout_needs_no_change_outside_its_module(tmp_path: Path) -> None:
    raw = np.zeros((5, 4 + 3), np.float32)
    raw[0] = [0.25, 0.5, 0.5, 0.75, 0.0, 0.9, 0.0]  # a dog: input box 160, 320, 320, 480
    folder = model_folder(tmp_path / "corners", {"output0": raw}, NAMES, "corners-v1", {})
    with pytest.raises(ModelArtifactError, match="classes"):
        load_model(str(folder))  # unknown to framepipe: read as YOLOv8's layout, whose class count does not fit
    sys.modules.pop("tests.custom_head", None)
    importlib.import_module("tests.custom_head")
    try:
        model = load_model(str(folder))
        assert isinstance(model, OnnxModel) and model.head.name == "corner-fractions"
        assert boxes_of(model.infer(np.zeros((640, 640, 3), np.uint8))) == [("dog", [160, 320, 320, 480], 0.9)]
    finally:
        unregister_head("corner-fractions")


def test_dynamic_shape_ultralytics_export_loads_as_a_path(tmp_path: Path) -> None:
    # `yolo export format=onnx dynamic=True`: input [batch, 3, height, width], output [batch, 4+nc, anchors]
    metadata = {
        "names": "{0: 'cat', 1: 'dog', 2: 'bird'}",
        "imgsz": "[480, 640]",
        "task": "detect",
        "stride": "32",
        "batch": "1",
        "author": "Ultralytics",
    }
    path = build_model(
        tmp_path / "yolo-dynamic.onnx",
        {"output0": yolov8_raw()},
        input_hw=("height", "width"),
        metadata=metadata,
        output_dims={"output0": ["batch", 7, "anchors"]},
    )
    model = load_model(str(path))
    assert isinstance(model, OnnxModel)
    assert model.head.name == "yolov8" and model.class_names == NAMES and model.input_size == (640, 480)
    assert model.batch_size is None
    runs: list[int] = []
    session = model.session

    class Counting:
        def run(self, names, feed):
            runs.append(next(iter(feed.values())).shape[0])
            return session.run(names, feed)

        def __getattr__(self, name):
            return getattr(session, name)

    model.session = Counting()
    results = model.infer([np.zeros((480, 640, 3), np.uint8)] * 4)
    limit = model.max_batch_size  # batched runs at the metadata's size, as large as the limit allows
    assert runs == [min(4, limit)] * -(-4 // limit) and len(results) == 4
    assert all(boxes_of(r)[0] == ("cat", [288, 60, 352, 100], 0.95) for r in results)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (OutputSpec([[1, 84, 8400]], ["output0"], 80), "yolov8"),
        (OutputSpec([[1, 25200, 85]], ["output0"], 80), "yolov5"),
        (OutputSpec([[1, 300, 6]], ["output0"], 80), "end-to-end"),
        (OutputSpec([["b", 300, 6]], ["output0"], metadata={"task": "detect", "end2end": "True"}), "end-to-end"),
        (OutputSpec([["b", 84, "n"]], ["output0"], metadata={"task": "detect"}), "yolov8"),
        (OutputSpec([[1, 300, 4], [1, 300, 91]], ["dets", "labels"]), "rf-detr"),
        (OutputSpec([[1, 8400, 4], [1, 8400, 80]], ["boxes", "scores"], model_type="yolo_nas_s"), "yolo-nas"),
    ],
)
def test_head_choice(spec: OutputSpec, expected: str) -> None:
    assert choose_head(spec)[0].name == expected


def test_ambiguous_outputs_ask_for_a_model_type() -> None:
    with pytest.raises(UnsupportedModelOutputError, match=r"several layouts \(yolo-nas, rf-detr\).*model_type"):
        choose_head(OutputSpec([[1, 8400, 4], [1, 8400, 80]], ["boxes", "scores"]))
    with pytest.raises(UnsupportedModelOutputError, match="several layouts"):
        choose_head(OutputSpec([["b", 84, "n"]], ["output0"]))  # no metadata, nothing fixed: say so
