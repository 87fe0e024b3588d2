"""``render_boxes`` on what the bundled demo models of each task find in a generated scene they were
not trained on, checked by pixels against the scene's ground truth: each object's mask colours the
object in its class's colour, each visible vertex gets a keypoint drawn on it, a classifier writes
the shape's class."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
import supervision as sv

from framepipe.artifacts import bundled_model_ids
from framepipe.demo.scenes import CLASS_NAMES, instance_masks, keypoints, random_scene, random_scene_shapes
from framepipe.models import get_model
from framepipe.predictions import to_payload
from framepipe.sinks.annotators import classification_labels
from framepipe.sinks.render import annotate

SEED = 424243  # not a training seed


def needs(model_id: str) -> None:
    if model_id not in bundled_model_ids():
        pytest.fail(f"{model_id} is not bundled")


def test_segmentation_masks_colour_their_objects() -> None:
    needs("framepipe-shapes-seg/1")
    rng = np.random.default_rng(SEED)
    image, truth, shapes = random_scene_shapes(640, 360, rng, count=(4, 6))
    payload: Any = to_payload(get_model("framepipe-shapes-seg/1").predict(image))
    drawn = annotate(image, payload).astype(float)
    masks = instance_masks(shapes, (640, 360))
    coloured, counted = 0, 0
    for mask, class_id in zip(masks, truth.class_ids.tolist(), strict=True):
        inside = cv2.erode(mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        if inside.sum() < 200:
            continue
        expected = 0.5 * image[inside].astype(float) + 0.5 * np.array(sv.ColorPalette.DEFAULT.by_idx(class_id).as_bgr())
        close = np.abs(drawn[inside] - expected).max(axis=1) <= 3
        coloured += int(close.sum())
        counted += int(inside.sum())
    # labels and box lines drawn over objects take the rest (without masks this is 0)
    assert counted > 2000 and coloured / counted >= 0.75, (coloured, counted)
    union = np.asarray(masks.any(axis=0), np.uint8)
    outside = ~cv2.dilate(union, np.ones((41, 41), np.uint8)).astype(bool)
    assert (drawn[outside] == image[outside]).mean() > 0.97  # little is drawn away from the objects


def test_keypoints_are_drawn_on_the_vertices() -> None:
    needs("framepipe-shapes-pose/1")
    rng = np.random.default_rng(SEED)
    image, _, shapes = random_scene_shapes(640, 360, rng, count=(4, 6))
    payload: Any = to_payload(get_model("framepipe-shapes-pose/1").predict(image, keypoint_confidence=0.5))
    drawn = annotate(image, payload)
    vertex = np.array(sv.Color.ROBOFLOW.as_bgr())
    marked = np.all(drawn == vertex, axis=2)
    near = cv2.dilate(marked.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    hits, total = 0, 0
    for shape in shapes:
        for x, y in keypoints(shape).tolist():
            if 4 <= x < 636 and 4 <= y < 356:
                total += 1
                hits += bool(near[int(y), int(x)])
    assert total >= 8 and hits / total >= 0.7, (hits, total)


def test_classifier_writes_the_shape_s_class() -> None:
    needs("framepipe-shapes-cls/1")
    rng = np.random.default_rng(SEED)
    image, truth = random_scene(320, 320, rng, count=(1, 1), radius_range=(60.0, 110.0))
    payload: Any = to_payload(get_model("framepipe-shapes-cls/1").predict(image))
    assert payload["top"] == CLASS_NAMES[int(truth.class_ids[0])]
    drawn = annotate(image, payload)
    changed = (drawn != image).any(axis=2)
    rows, cols = np.nonzero(changed)
    assert rows.max() < 60 and cols.max() < 200 and changed.sum() > 300  # the label, in the corner
    assert classification_labels(payload)[0].startswith(payload["top"])
