"""The scene and clip generator: exact boxes, honest visibility, determinism, real H.264 output."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from framepipe.demo.clip import make_clip, read_truth, scene_frames
from framepipe.demo.scenes import CLASS_NAMES, Shape, random_scene, render, visibility
from tests.helpers import probe_video


def _drawn_extent(background: np.ndarray, image: np.ndarray) -> tuple[int, int, int, int]:
    """Pixel span of what was drawn at more than half strength (anti-aliased edges fade out)."""
    difference = np.abs(image.astype(np.int16) - background).max(axis=2)
    changed = np.argwhere(difference > difference.max() / 2)
    (y1, x1), (y2, x2) = changed.min(axis=0), changed.max(axis=0)
    return int(x1), int(y1), int(x2) + 1, int(y2) + 1


@pytest.mark.parametrize("class_id", range(len(CLASS_NAMES)))
@pytest.mark.parametrize("angle", [0.0, 0.7, 1.9])
def test_box_is_the_drawn_extent(class_id: int, angle: float) -> None:
    background = np.full((200, 200, 3), 40, np.uint8)
    shape = Shape(class_id, x=97.3, y=103.8, radius=41.0, angle=angle, color=(20, 220, 250))
    image, truth = render(background, [shape])
    x1, y1, x2, y2 = _drawn_extent(background, image)
    box = truth.boxes[0]
    # pixels are whole: the drawn span and the exact box differ by less than one pixel
    assert abs(x1 - box[0]) <= 1.0 and abs(y1 - box[1]) <= 1.0
    assert abs(x2 - box[2]) <= 1.0 and abs(y2 - box[3]) <= 1.0
    assert truth.visible[0] == pytest.approx(1.0, abs=0.04)


def test_visibility_counts_occlusion_and_frame_edges() -> None:
    bottom = Shape(1, x=50, y=50, radius=30, angle=math.pi / 4, color=(0, 0, 255))  # axis-aligned square
    top = Shape(1, x=80, y=50, radius=30, angle=math.pi / 4, color=(0, 255, 0))
    vis = visibility([bottom, top], 200, 200)
    side = 30 * math.sqrt(2)  # 42.4 px; the top square covers the right part of the bottom one
    expected = (80 - side / 2 - (50 - side / 2)) / side
    assert vis[1] == pytest.approx(1.0, abs=0.03)
    assert vis[0] == pytest.approx(expected, abs=0.04)
    # half of a shape outside the frame is not visible
    edge = Shape(0, x=0, y=100, radius=30, angle=0, color=(255, 0, 0))
    assert visibility([edge], 200, 200)[0] == pytest.approx(0.5, abs=0.04)


def test_random_scene_respects_minimum_visibility_and_is_deterministic() -> None:
    for seed in range(5):
        image, truth = random_scene(320, 240, np.random.default_rng(seed), count=(6, 10), min_visible=0.6)
        again, truth_again = random_scene(320, 240, np.random.default_rng(seed), count=(6, 10), min_visible=0.6)
        assert np.array_equal(image, again)
        assert np.array_equal(truth.boxes, truth_again.boxes)
        assert len(truth.boxes) >= 1
        assert truth.visible.min() >= 0.6 - 0.05  # anti-aliased drawing vs filled mask
        assert set(truth.class_ids.tolist()) <= set(range(len(CLASS_NAMES)))


def test_clip_frames_are_deterministic_for_a_seed() -> None:
    first = list(scene_frames(seconds=0.5, fps=10, size=(160, 96), seed=5))
    second = list(scene_frames(seconds=0.5, fps=10, size=(160, 96), seed=5))
    other = list(scene_frames(seconds=0.5, fps=10, size=(160, 96), seed=6))
    assert len(first) == 5
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, second, strict=True))
    assert not np.array_equal(first[0][0], other[0][0])


def test_clip_objects_move_and_stay_inside() -> None:
    frames = list(scene_frames(seconds=1.0, fps=30, size=(320, 180), seed=8))
    start, end = frames[0][1].boxes, frames[-1][1].boxes
    assert start.shape == end.shape
    assert np.abs(end - start).max() > 5  # things move
    for _, truth in frames:
        assert (truth.boxes[:, [0, 2]] >= 0).all() and (truth.boxes[:, [0, 2]] <= 320).all()
        assert (truth.boxes[:, [1, 3]] >= 0).all() and (truth.boxes[:, [1, 3]] <= 180).all()


def test_make_clip_writes_h264_and_truth(tmp_path) -> None:
    info = make_clip(tmp_path / "c.mp4", seconds=1.0, fps=25, size=(256, 144), seed=3)
    codec, frames, width, height = probe_video(tmp_path / "c.mp4")
    assert (codec, frames, width, height) == ("h264", 25, 256, 144)
    assert info.frames == 25
    lines = (tmp_path / "c.jsonl").read_text().splitlines()
    assert len(lines) == 25
    record = json.loads(lines[3])
    assert record["frame_index"] == 3 and record["pts_seconds"] == pytest.approx(3 / 25)
    assert {"class_id", "class", "box", "visible"} <= set(record["objects"][0])
    truth = read_truth(tmp_path / "c.jsonl")
    assert len(truth) == 25 and truth[3].boxes.shape[1] == 4


def test_read_truth_rejects_a_gap(tmp_path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps({"frame_index": 0, "objects": []}) + "\n" + json.dumps({"frame_index": 2, "objects": []})
    )
    with pytest.raises(ValueError, match="expected frame_index 1"):
        read_truth(path)
