"""Instance segmentation models (YOLOv8/11-seg, YOLOv5-seg) on real ONNX graphs run by
onnxruntime: masks from coefficients and prototypes, padding cropped, cropped to their box, in
each mask_decode_mode, for letterbox and stretch, at padded edges; the polygon and RLE JSON read
back by supervision.

The prototypes hold two shapes drawn in prototype pixels (a disk and a bar), so the expected
mask of each instance in frame pixels is worked out here from the geometry alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import supervision as sv
from supervision.detection.utils.converters import rle_to_mask

from framepipe.errors import UnsupportedModelOutputError
from framepipe.models import OnnxModel, load_model
from framepipe.models.params import InvalidParameterError
from tests.onnx_models import model_folder

NAMES = ["cat", "dog"]
MASKS, PROTO = 32, 160  # a 640x640 input: prototypes [32, 160, 160], 4 input pixels each
DISK = (320.0, 300.0, 60.0)  # input pixels: centre x, y, radius
BAR = (80, 400, 240, 520)  # input pixels x1, y1, x2, y2: its bottom reaches into a wide frame's padding


def prototypes() -> np.ndarray:
    protos = np.zeros((MASKS, PROTO, PROTO), np.float32)
    protos[0] = -10.0  # background
    centres = (np.arange(PROTO) + 0.5) * 4  # each prototype pixel's centre in input pixels
    x, y = np.meshgrid(centres, centres)
    protos[1] = 20.0 * ((x - DISK[0]) ** 2 + (y - DISK[1]) ** 2 <= DISK[2] ** 2)
    protos[2] = 20.0 * ((x >= BAR[0]) & (x < BAR[2]) & (y >= BAR[1]) & (y < BAR[3]))
    return protos


def coefficients(*channels: int) -> list[float]:
    values = [0.0] * MASKS
    for channel in channels:
        values[channel] = 1.0
    return values


def v8_predictions() -> np.ndarray:
    """[4 + 2 + 32, 200]: a cat around the disk, a dog whose box cuts the bar, a duplicate cat."""
    columns = [
        [320, 300, 200, 200, 0.9, 0.0, *coefficients(0, 1)],  # cat: box 220..420 x 200..400, holds the disk
        [322, 300, 200, 200, 0.8, 0.0, *coefficients(0, 1)],  # the same cat: NMS drops it
        [150, 450, 100, 140, 0.0, 0.8, *coefficients(0, 2)],  # dog: box 100..200 x 380..520 cuts the bar
    ]
    columns += [[0.0] * (6 + MASKS)] * 197
    return np.array(columns, np.float32).T


def seg_model(tmp_path: Path, pre: dict, v5: bool = False) -> OnnxModel:
    if v5:  # [N, 5 + nc + 32]: objectness 1 before the class scores
        raw = v8_predictions().T
        preds = np.concatenate([raw[:, :4], np.ones((len(raw), 1), np.float32), raw[:, 4:]], axis=1)
    else:
        preds = v8_predictions()
    outputs = {"output0": preds, "output1": prototypes()}
    folder = model_folder(
        tmp_path / ("v5" if v5 else "v8"),
        outputs,
        NAMES,
        "yolov5n-seg" if v5 else "yolov8n-seg",
        pre,
        task_type="instance-segmentation",
    )
    model = load_model(str(folder))
    assert isinstance(model, OnnxModel) and model.task_type == "instance-segmentation"
    return model


def letterbox() -> dict:
    return {"resize": {"enabled": True, "format": "Fit (grey edges) in", "width": 640, "height": 640}}


def stretch() -> dict:
    return {"resize": {"enabled": True, "format": "Stretch to", "width": 640, "height": 640}}


def expected_masks(width: int, height: int, to_input) -> tuple[np.ndarray, np.ndarray]:
    """The cat's and the dog's masks in frame pixels: each frame pixel's centre taken to input
    pixels by ``to_input``, inside the shape, inside the box, and on the picture (not padding)."""
    x, y = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    xi, yi = to_input(x, y)
    disk = (xi - DISK[0]) ** 2 + (yi - DISK[1]) ** 2 <= DISK[2] ** 2
    bar = (xi >= BAR[0]) & (xi < BAR[2]) & (yi >= BAR[1]) & (yi < BAR[3])
    dog_box = (xi >= 100) & (xi < 200) & (yi >= 380) & (yi < 520)
    return disk, bar & dog_box


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


LETTERBOX_WIDE = (1000, 500, lambda x, y: (x * 0.64, y * 0.64 + 160))  # fits as 640x320, 160 px above
STRETCH_PORTRAIT = (500, 700, lambda x, y: (x * 640 / 500, y * 640 / 700))


@pytest.mark.parametrize("mode", ["accurate", "fast", "tradeoff"])
@pytest.mark.parametrize(("pre", "frame"), [(letterbox(), LETTERBOX_WIDE), (stretch(), STRETCH_PORTRAIT)])
def test_masks_in_frame_pixels(tmp_path: Path, mode: str, pre: dict, frame: tuple) -> None:
    width, height, to_input = frame
    model = seg_model(tmp_path, pre)
    image = np.zeros((height, width, 3), np.uint8)
    typed = model.predict(image, mask_decode_mode=mode, tradeoff_factor=0.5, keep_masks=True)
    found = typed.detections
    assert found is not None and found.class_id.tolist() == [0, 1] and found.mask is not None
    assert found.mask.shape == (2, height, width) and found.mask.dtype == bool
    cat, dog = expected_masks(width, height, to_input)
    bound = 0.97 if mode == "accurate" else 0.95
    assert iou(found.mask[0], cat) >= bound and iou(found.mask[1], dog) >= bound
    for mask, (x1, y1, x2, y2) in zip(found.mask, found.xyxy.astype(int).tolist(), strict=True):
        rows, cols = np.nonzero(mask)
        assert rows.min() >= y1 and rows.max() < y2 and cols.min() >= x1 and cols.max() < x2  # cropped to the box
    # the JSON's polygons, read by supervision, give the same masks
    result = model.infer(image, mask_decode_mode=mode, tradeoff_factor=0.5)
    assert [p["mask_format"] for p in result["predictions"]] == ["polygon", "polygon"]
    read = sv.Detections.from_inference(result)
    assert read.mask is not None and read.mask.shape == (2, height, width)
    assert iou(read.mask[0], cat) >= bound - 0.06 and iou(read.mask[1], dog) >= bound - 0.06


def test_the_padded_edge_is_cropped(tmp_path: Path) -> None:
    # the bar runs to y_in = 520 but a 1000x500 frame ends at y_in = 480: no mask below the frame,
    # and the dog's mask reaches the frame's bottom row
    model = seg_model(tmp_path, letterbox())
    found = model.predict(np.zeros((500, 1000, 3), np.uint8), keep_masks=True).detections
    assert found is not None and found.mask is not None
    dog = found.mask[1]
    assert dog[-1].any() and found.xyxy[1, 3] == 500
    assert dog[:, :150].sum() == 0  # left of the box (x_in 100 -> 156 px) nothing, though the bar is there
    assert np.isclose(dog.sum(), (312.5 - 156.25) * (500 - 375), rtol=0.03)


def test_rle_json(tmp_path: Path) -> None:
    model = seg_model(tmp_path, letterbox())
    image = np.zeros((500, 1000, 3), np.uint8)
    result = model.infer(image, response_mask_format="rle")
    typed = model.predict(image, keep_masks=True)
    assert typed.detections is not None and typed.detections.mask is not None
    for item, mask in zip(result["predictions"], typed.detections.mask, strict=True):
        assert item["mask_format"] == "rle" and "points" not in item and item["rle"]["size"] == [500, 1000]
        assert np.array_equal(rle_to_mask(item["rle"]["counts"], (1000, 500)), mask)
    read = sv.Detections.from_inference(result)
    assert read.mask is not None and np.array_equal(np.asarray(read.mask), typed.detections.mask)


def test_masks_are_kept_only_when_asked(tmp_path: Path) -> None:
    model = seg_model(tmp_path, letterbox())
    found = model.predict(np.zeros((500, 1000, 3), np.uint8)).detections
    assert found is not None and found.mask is None and found.polygons is not None and len(found.polygons) == 2


def test_yolov5_seg_with_objectness(tmp_path: Path) -> None:
    width, height, to_input = LETTERBOX_WIDE
    model = seg_model(tmp_path, letterbox(), v5=True)
    assert model.head.name == "yolov5-seg"
    found = model.predict(np.zeros((height, width, 3), np.uint8), keep_masks=True).detections
    assert found is not None and found.mask is not None and found.class_id.tolist() == [0, 1]
    cat, dog = expected_masks(width, height, to_input)
    assert iou(found.mask[0], cat) >= 0.95 and iou(found.mask[1], dog) >= 0.95


def test_without_prototypes(tmp_path: Path) -> None:
    folder = model_folder(
        tmp_path / "m",
        {"output0": v8_predictions()},
        NAMES,
        "yolov8n-seg",
        letterbox(),
        task_type="instance-segmentation",
    )
    with pytest.raises(UnsupportedModelOutputError, match="needs a prototype output"):
        load_model(str(folder))


def test_unknown_mask_decode_mode(tmp_path: Path) -> None:
    model = seg_model(tmp_path, letterbox())
    with pytest.raises(InvalidParameterError, match="unknown mask_decode_mode 'best'"):
        model.infer(np.zeros((64, 64, 3), np.uint8), mask_decode_mode="best")
    with pytest.raises(InvalidParameterError, match="tradeoff_factor"):
        model.infer(np.zeros((64, 64, 3), np.uint8), mask_decode_mode="tradeoff", tradeoff_factor=1.5)
    with pytest.raises(TypeError, match="keypoint_confidence"):
        model.infer(np.zeros((64, 64, 3), np.uint8), keypoint_confidence=0.5)


@pytest.mark.parametrize("size", [(1000, 500), (300, 170), (160, 90)])
def test_a_box_window_resampled_alone_equals_the_whole_resized(size: tuple[int, int]) -> None:
    import cv2

    from framepipe.models.heads.segmentation import resample_window

    values = np.random.default_rng(1).random((90, 160)).astype(np.float32)
    whole = cv2.resize(values, size, interpolation=cv2.INTER_LINEAR)
    rows, cols = slice(size[1] // 5, size[1] // 2), slice(size[0] // 3, size[0] - 7)
    assert np.allclose(resample_window(values, size, rows, cols), whole[rows, cols], atol=2e-3)


def test_rle_of_a_window_equals_the_rle_of_the_frame() -> None:
    from framepipe.predictions.rle import rle_encode, rle_encode_window

    rng = np.random.default_rng(3)
    for _ in range(40):
        height, width = rng.integers(1, 40, 2).tolist()
        top, left = int(rng.integers(0, height)), int(rng.integers(0, width))
        rows, cols = int(rng.integers(1, height - top + 1)), int(rng.integers(1, width - left + 1))
        window = rng.random((rows, cols)) > 0.5
        frame = np.zeros((height, width), bool)
        frame[top : top + rows, left : left + cols] = window
        assert rle_encode_window(window, top, left, (height, width)) == rle_encode(frame)
        assert np.array_equal(rle_to_mask(rle_encode(frame)["counts"], (width, height)), frame)
