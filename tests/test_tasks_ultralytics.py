"""A bare Ultralytics export (an ``.onnx`` with Ultralytics' metadata and no ``environment.json``)
is pre- and post-processed as Ultralytics' own ``predict`` does it: classification by a
shortest-side PIL bilinear resize and a centre crop, no normalisation; detection, segmentation
and pose by Ultralytics' ``LetterBox`` (sizes rounded, padding split ``round(half -/+ 0.1)``);
boxes mapped back by its ``scale_boxes`` and keypoints and mask outlines by its ``scale_coords``
(one gain, each its own padding, unrounded results, clipped); masks by its ``process_mask``
(``upsample=True``), ``masks2segments`` and ``scale_masks``. The expected values are worked out
here from Ultralytics' formulas (``ultralytics/data/augment.py``, ``ultralytics/utils/ops.py``)
on whole images, with cv2 and PIL directly (``cv2.resize`` ``INTER_LINEAR`` stands for torch's
bilinear ``interpolate``, the same half-pixel rule)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from supervision.detection.utils.converters import rle_to_mask

from framepipe.models import OnnxModel, load_model
from tests.onnx_models import build_model
from tests.test_tasks_keypoints import pose_raw
from tests.test_tasks_segmentation import prototypes, v8_predictions


def test_classifier_resizes_the_shortest_side_and_crops_the_centre(tmp_path: Path) -> None:
    metadata = {"task": "classify", "names": "{0: 'cat', 1: 'dog'}", "imgsz": "[224, 224]"}
    scores = {"output0": np.array([0.3, 0.7], np.float32)}
    path = build_model(tmp_path / "cls.onnx", scores, (224, 224), metadata=metadata)
    model = load_model(str(path))
    assert isinstance(model, OnnxModel)
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (300, 600, 3), np.uint8)
    frame[:, :150] = 0  # the left quarter, which the centre crop leaves out
    tensor, _ = model.preprocess([frame])
    # torchvision's Resize(224) of a 600x300 PIL image: 448x224, bilinear; CenterCrop(224): x 112..336
    resized = np.asarray(Image.fromarray(frame[:, :, ::-1]).resize((448, 224), Image.Resampling.BILINEAR))
    expected = resized[:, 112:336].transpose(2, 0, 1).astype(np.float32) / 255
    assert np.allclose(tensor[0], expected, atol=1e-6)
    assert tensor[0, :, :, 2:].min(axis=0).mean() > 0.2  # the black quarter is cropped off (blur aside)
    portrait = rng.integers(0, 256, (500, 250, 3), np.uint8)  # 224x448: rows 112..336
    tensor, _ = model.preprocess([portrait])
    resized = np.asarray(Image.fromarray(portrait[:, :, ::-1]).resize((224, 448), Image.Resampling.BILINEAR))
    assert np.allclose(tensor[0], resized[112:336].transpose(2, 0, 1).astype(np.float32) / 255, atol=1e-6)


def ultralytics_letterbox(frame: np.ndarray, size: int = 640) -> tuple[np.ndarray, float, int, int]:
    """Ultralytics' LetterBox(new_shape=(size, size), auto=False, center=True), written out."""
    height, width = frame.shape[:2]
    r = min(size / height, size / width)
    new_w, new_h = round(width * r), round(height * r)
    dw, dh = (size - new_w) / 2, (size - new_h) / 2
    image = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    return image, r, left, top


def scale_pads(frame_hw: tuple[int, int], size: int = 640) -> tuple[float, tuple[int, int], tuple[float, float]]:
    """The gain, ``scale_boxes``' padding (x, y) and ``scale_coords``' padding, from the frame's
    unrounded size in the input (not where ``LetterBox`` put the picture)."""
    height, width = frame_hw
    gain = min(size / height, size / width)
    half_w, half_h = (size - width * gain) / 2, (size - height * gain) / 2
    return gain, (round(half_w - 0.1), round(half_h - 0.1)), (half_w, half_h)


def test_pose_export_letterbox_and_keypoints(tmp_path: Path) -> None:
    metadata = {"task": "pose", "names": "{0: 'person', 1: 'dog'}", "kpt_shape": "[3, 3]", "imgsz": "[640, 640]"}
    model = load_model(str(build_model(tmp_path / "pose.onnx", {"output0": pose_raw()}, metadata=metadata)))
    frame = np.random.default_rng(1).integers(0, 256, (501, 1000, 3), np.uint8)  # 640x320.64: 321 rows, 159 above
    tensor, _ = model.preprocess([frame])
    image, gain, left, top = ultralytics_letterbox(frame)
    assert (left, top, image.shape[:2]) == (0, 159, (640, 640))
    assert np.allclose(tensor[0], image[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255, atol=1e-6)
    typed = model.predict(frame, confidence=0.5)
    found = typed.detections
    assert found is not None and found.keypoints is not None
    person = int(np.flatnonzero(found.class_id == 0)[np.argmax(found.confidence[found.class_id == 0])])
    _, box_pad, point_pad = scale_pads((501, 1000))
    assert box_pad == (0, 160) and point_pad[1] > 159.6  # the picture sits at 159: both differ from it

    def back(x: float, y: float, pad: tuple[float, float]) -> tuple[float, float]:  # unpad, / gain, clip
        return min(max((x - pad[0]) / gain, 0), 1000), min(max((y - pad[1]) / gain, 0), 501)

    expected_box = [*back(220, 270, box_pad), *back(420, 370, box_pad)]
    assert np.allclose(found.xyxy[person], expected_box, atol=1e-3)  # not rounded
    expected_points = [back(300, 300, point_pad), back(340, 310, point_pad), back(320, 360, point_pad)]
    assert np.allclose(found.keypoints[person, :, :2], expected_points, atol=1e-3)
    straddling = int(np.flatnonzero(found.confidence == np.float32(0.6))[0])  # box 450..550 x 150..190
    assert found.xyxy[straddling, 1] == 0.0 and found.keypoints[straddling, 0, 1] == 0.0  # clipped to the frame


def ultralytics_segments(
    predictions: np.ndarray, picks: list[int], frame_hw: tuple[int, int]
) -> tuple[list[np.ndarray], np.ndarray]:
    """Ultralytics' predict for the candidates ``picks`` of ``predictions`` ``[38, N]``, on whole
    images: ``process_mask(upsample=True)`` (crop at prototype size to the box / 4 rounded,
    bilinear to 640x640, ``> 0``), ``masks2segments`` + ``scale_coords`` (``masks.xy``), and
    ``scale_masks`` (padding cut off, bilinear to the frame) ``> 0.5`` for frame-size masks."""
    protos = prototypes()
    height, width = frame_hw
    gain, _, (half_w, half_h) = scale_pads(frame_hw)
    top, left = round(half_h - 0.1), round(half_w - 0.1)
    bottom, right = 640 - round(half_h + 0.1), 640 - round(half_w + 0.1)
    outlines, masks = [], []
    for pick in picks:
        cx, cy, w, h = predictions[:4, pick]
        box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
        x1, y1, x2, y2 = np.round(box / 4).astype(int)
        logit = (predictions[6:, pick] @ protos.reshape(len(protos), -1)).reshape(160, 160)
        cropped = np.zeros_like(logit)
        cropped[y1:y2, x1:x2] = logit[y1:y2, x1:x2]
        mask = (cv2.resize(cropped, (640, 640), interpolation=cv2.INTER_LINEAR) > 0).astype(np.uint8)
        contours = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
        xy = np.array(contours[int(np.argmax([len(c) for c in contours]))]).reshape(-1, 2).astype(np.float32)
        xy[:, 0] = ((xy[:, 0] - half_w) / gain).clip(0, width)
        xy[:, 1] = ((xy[:, 1] - half_h) / gain).clip(0, height)
        outlines.append(xy)
        picture = mask[top:bottom, left:right].astype(np.float32)
        masks.append(cv2.resize(picture, (width, height), interpolation=cv2.INTER_LINEAR) > 0.5)
    return outlines, np.array(masks)


def off_grid_predictions() -> np.ndarray:
    """The segmentation test's predictions with the dog's box moved off the prototype grid:
    x 101..203, y 378..522, / 4: 25.25..50.75 and 94.5..130.5, where rounding decides the crop
    (94.5 rounds to 94, 130.5 to 130, as torch.round does)."""
    predictions = v8_predictions().copy()
    predictions[:4, 2] = [152.0, 450.0, 102.0, 144.0]
    return predictions


@pytest.mark.parametrize("frame_hw", [(501, 1000), (300, 600), (500, 250)])
def test_segment_export_masks_equal_ultralytics(tmp_path: Path, frame_hw: tuple[int, int]) -> None:
    metadata = {"task": "segment", "names": "{0: 'cat', 1: 'dog'}", "imgsz": "[640, 640]"}
    predictions = off_grid_predictions()
    outputs = {"output0": predictions, "output1": prototypes()}
    model = load_model(str(build_model(tmp_path / "seg.onnx", outputs, metadata=metadata)))
    frame = np.zeros((*frame_hw, 3), np.uint8)
    found = model.predict(frame, keep_masks=True).detections
    assert found is not None and found.mask is not None and found.polygons is not None
    assert found.class_id.tolist() == [0, 1]
    gain, box_pad, _ = scale_pads(frame_hw)
    cat = np.array([220 - box_pad[0], 200 - box_pad[1], 420 - box_pad[0], 400 - box_pad[1]]) / gain
    assert np.allclose(found.xyxy[0], cat.clip(0, [frame_hw[1], frame_hw[0]] * 2), atol=1e-3)
    outlines, masks = ultralytics_segments(predictions, [0, 2], frame_hw)
    for ours, theirs in zip(found.polygons, outlines, strict=True):
        assert ours.shape == theirs.shape and np.allclose(ours, theirs, atol=1e-3)
    assert found.mask.shape == masks.shape and masks[0].sum() > 1000
    assert np.array_equal(found.mask, masks)
    # the JSON carries the same outline, and COCO RLE the same frame-size mask
    points = model.infer(frame)["predictions"]
    assert np.allclose([[p["x"], p["y"]] for p in points[1]["points"]], outlines[1], atol=1e-3)
    rle = model.infer(frame, response_mask_format="rle")["predictions"]
    for item, expected in zip(rle, masks, strict=True):
        assert np.array_equal(rle_to_mask(item["rle"]["counts"], (frame_hw[1], frame_hw[0])), expected)


def test_segment_export_other_decode_modes_follow_roboflow(tmp_path: Path) -> None:
    """``fast`` and ``tradeoff`` are Roboflow's modes: a bare export decoded in them gets
    Roboflow's masks (cropped to the box at decode size), close to Ultralytics' but not equal."""
    metadata = {"task": "segment", "names": "{0: 'cat', 1: 'dog'}", "imgsz": "[640, 640]"}
    predictions = off_grid_predictions()
    outputs = {"output0": predictions, "output1": prototypes()}
    model = load_model(str(build_model(tmp_path / "seg.onnx", outputs, metadata=metadata)))
    frame = np.zeros((501, 1000, 3), np.uint8)
    _, masks = ultralytics_segments(predictions, [0, 2], (501, 1000))
    for mode in ("fast", "tradeoff"):
        found = model.predict(frame, keep_masks=True, mask_decode_mode=mode).detections
        assert found is not None and found.mask is not None
        for ours, theirs in zip(found.mask, masks, strict=True):
            assert (ours & theirs).sum() / (ours | theirs).sum() > 0.85
