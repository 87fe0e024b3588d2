"""A bare Ultralytics export (an ``.onnx`` with Ultralytics' metadata and no ``environment.json``)
is pre- and post-processed as Ultralytics' own ``predict`` does it: classification by a
shortest-side PIL bilinear resize and a centre crop, no normalisation; detection, segmentation
and pose by Ultralytics' ``LetterBox`` (sizes rounded, padding split ``round(half -/+ 0.1)``),
boxes and keypoints mapped back by its ``scale_boxes`` (one gain, unrounded, clipped); masks
agree with its ``process_mask`` + ``scale_image`` but for the strip at a cutting box edge. The
expected values are worked out here from Ultralytics' formulas (``ultralytics/data/augment.py``,
``ultralytics/utils/ops.py``), with cv2 and PIL directly."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

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

    def back(x: float, y: float) -> tuple[float, float]:  # scale_boxes / scale_coords, then clip
        return min(max((x - left) / gain, 0), 1000), min(max((y - top) / gain, 0), 501)

    assert np.allclose(found.xyxy[person], [*back(220, 270), *back(420, 370)], atol=1e-3)  # not rounded
    expected_points = [back(300, 300), back(340, 310), back(320, 360)]
    assert np.allclose(found.keypoints[person, :, :2], expected_points, atol=1e-3)
    straddling = int(np.flatnonzero(found.confidence == np.float32(0.6))[0])  # box 450..550 x 150..190
    assert found.xyxy[straddling, 1] == 0.0 and found.keypoints[straddling, 0, 1] == 0.0  # clipped to the frame


def ultralytics_masks(coefficients: np.ndarray, boxes_in: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """Ultralytics' process_mask (crop at prototype size, bilinear to the input, > 0) then
    scale_image (padding cut off, resized to the frame), for boxes in input pixels."""
    protos = prototypes()
    logits = (coefficients @ protos.reshape(len(protos), -1)).reshape(-1, 160, 160)
    rows, cols = np.arange(160)[:, None], np.arange(160)[None, :]
    height, width = frame_hw
    gain = min(640 / height, 640 / width)
    pad_w, pad_h = (640 - width * gain) / 2, (640 - height * gain) / 2
    top, left = round(pad_h - 0.1), round(pad_w - 0.1)
    bottom, right = round(640 - pad_h + 0.1), round(640 - pad_w + 0.1)
    masks = []
    for logit, (x1, y1, x2, y2) in zip(logits, boxes_in / 4, strict=True):
        cropped = logit * ((cols >= x1) & (cols < x2) & (rows >= y1) & (rows < y2))
        upsampled = cv2.resize(cropped.astype(np.float32), (640, 640), interpolation=cv2.INTER_LINEAR) > 0
        picture = upsampled[top:bottom, left:right].astype(np.float32)
        masks.append(cv2.resize(picture, (width, height), interpolation=cv2.INTER_LINEAR) > 0.5)
    return np.array(masks)


def test_segment_export_masks_match_ultralytics(tmp_path: Path) -> None:
    metadata = {"task": "segment", "names": "{0: 'cat', 1: 'dog'}", "imgsz": "[640, 640]"}
    outputs = {"output0": v8_predictions(), "output1": prototypes()}
    model = load_model(str(build_model(tmp_path / "seg.onnx", outputs, metadata=metadata)))
    frame = np.zeros((501, 1000, 3), np.uint8)
    found = model.predict(frame, keep_masks=True).detections
    assert found is not None and found.mask is not None and found.class_id.tolist() == [0, 1]
    gain, top = 0.64, 159
    assert np.allclose(found.xyxy[0], [220 / gain, (200 - top) / gain, 420 / gain, (400 - top) / gain], atol=1e-3)
    raw = v8_predictions().T
    boxes_in = np.array([[220, 200, 420, 400], [100, 380, 200, 520]], np.float32)
    expected = ultralytics_masks(raw[[0, 2], 6:], boxes_in, (501, 1000))
    # framepipe crops each mask to its box at decode size (Roboflow's crop); Ultralytics crops at
    # prototype size and then upsamples, so its masks reach up to half a prototype pixel (2 input
    # pixels) past the box: the dog, whose box cuts the bar, differs by that strip
    for ours, theirs, bound in zip(found.mask, expected, (0.95, 0.93), strict=True):
        overlap = (ours & theirs).sum() / (ours | theirs).sum()
        assert overlap >= bound, overlap
