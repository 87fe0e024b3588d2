"""YOLACT instance segmentation (Roboflow's ``yolact``) on a real ONNX graph run by onnxruntime:
boxes decoded from the priors, the background class dropped, NMS, masks from channels-last
prototypes, YOLACT's pixel normalisation; the expected values are worked out here from the
geometry (a 1100x550 frame stretched to 550x550)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from framepipe.errors import UnsupportedModelOutputError
from framepipe.models import OnnxModel, load_model
from tests.onnx_models import model_folder

SIZE, PROTO, MASKS = 550, 110, 32  # 5 input pixels per prototype pixel
STRETCH = {"resize": {"enabled": True, "format": "Stretch to", "width": SIZE, "height": SIZE}}
DISK = (275.0, 275.0, 60.0)  # input pixels


def outputs() -> dict[str, np.ndarray]:
    count = 10
    priors = np.tile([0.5, 0.5, 0.1, 0.1], (count, 1)).astype(np.float32)
    loc = np.zeros((count, 4), np.float32)
    conf = np.tile([0.9, 0.05, 0.05], (count, 1)).astype(np.float32)
    coefficients = np.zeros((count, MASKS), np.float32)
    coefficients[:, 0] = 1.0
    priors[0], conf[0], coefficients[0, 1] = [0.5, 0.5, 0.2, 0.4], [0.1, 0.85, 0.05], 1.0  # cat: 220..330 x 165..385
    priors[1], loc[1], conf[1], coefficients[1, 1] = [0.5, 0.5, 0.2, 0.4], [0.1, 0, 0, 0], [0.1, 0.8, 0.1], 1.0  # dup
    priors[2], loc[2], conf[2] = [0.2, 0.8, 0.1, 0.1], [0, 0, np.log(2) / 0.2, 0], [0.1, 0.05, 0.7]  # dog: 55..165
    coefficients[2, 2] = 1.0
    centres = (np.arange(PROTO) + 0.5) * (SIZE / PROTO)
    x, y = np.meshgrid(centres, centres)
    proto = np.zeros((PROTO, PROTO, MASKS), np.float32)
    proto[..., 0] = -10.0
    proto[..., 1] = 20.0 * ((x - DISK[0]) ** 2 + (y - DISK[1]) ** 2 <= DISK[2] ** 2)
    proto[..., 2] = 20.0 * ((x >= 40) & (x < 200) & (y >= 420) & (y < 470))
    return {"loc": loc, "conf": conf, "mask": coefficients, "priors": priors, "proto": proto}


def yolact(tmp_path: Path, drop: str | None = None) -> OnnxModel:
    values = {k: v for k, v in outputs().items() if k != drop}
    folder = model_folder(
        tmp_path / "yolact", values, ["cat", "dog"], "yolact", STRETCH, (SIZE, SIZE), task_type="instance-segmentation"
    )
    from tests.onnx_models import build_model

    build_model(folder / "weights.onnx", values, (SIZE, SIZE), unbatched=("priors",))
    model = load_model(str(folder))
    assert isinstance(model, OnnxModel)
    return model


def test_yolact_boxes_classes_and_masks(tmp_path: Path) -> None:
    model = yolact(tmp_path)
    assert model.head.name == "yolact" and model.task_type == "instance-segmentation"
    width, height = 1100, 550
    frame = np.empty((height, width, 3), np.uint8)
    frame[...] = (10, 100, 200)  # BGR
    tensor, _ = model.preprocess([frame])
    rgb, means, stds = (200, 100, 10), (123.68, 116.78, 103.94), (58.40, 57.12, 57.38)
    for channel, (value, mean, std) in enumerate(zip(rgb, means, stds, strict=True)):
        assert np.allclose(tensor[0, channel], (value - mean) / std, atol=1e-4)  # YOLACT's pixel mean and std
    found = model.predict(frame, keep_masks=True).detections
    assert found is not None and found.mask is not None
    assert found.class_id.tolist() == [0, 1]  # background dropped, the duplicate cat suppressed
    assert np.allclose(found.xyxy, [[440, 165, 660, 385], [110, 412, 330, 468]], atol=1)  # x doubled: stretch 0.5
    xs, ys = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    disk = ((xs / 2 - DISK[0]) ** 2 + (ys - DISK[1]) ** 2) <= DISK[2] ** 2
    disk &= (xs >= 440) & (xs < 660)  # the cat's box is narrower than the disk: its sides are cut
    bar = (xs / 2 >= 55) & (xs / 2 < 165) & (ys >= 420) & (ys < 468)  # the bar, cut by the dog's (rounded) box
    for ours, expected in zip(found.mask, (disk, bar), strict=True):
        assert (ours & expected).sum() / (ours | expected).sum() >= 0.95
    body = model.infer(frame)
    assert [p["class"] for p in body["predictions"]] == ["cat", "dog"]
    assert all(p["mask_format"] == "polygon" and len(p["points"]) >= 4 for p in body["predictions"])


def test_yolact_without_its_prototypes(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedModelOutputError, match="YOLACT model needs five outputs"):
        yolact(tmp_path, drop="proto")
