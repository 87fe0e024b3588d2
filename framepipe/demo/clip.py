"""Demo clips: shapes moving over a panning textured background, encoded to H.264 with their
ground truth in JSON lines.

Example:
    >>> from framepipe.demo import make_clip
    >>> info = make_clip("/tmp/shapes.mp4", seconds=2, seed=7)  # doctest: +SKIP
    >>> info.frames, info.truth_path  # doctest: +SKIP
    (60, '/tmp/shapes.jsonl')
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from framepipe.demo.scenes import GroundTruth, Shape, make_background, random_shape, render
from framepipe.sinks.video_file import H264Writer


@dataclass(frozen=True)
class ClipInfo:
    """What ``make_clip`` wrote."""

    video_path: str
    truth_path: str
    frames: int
    fps: float
    width: int
    height: int


def scene_frames(
    seconds: float = 10.0,
    fps: float = 30.0,
    size: tuple[int, int] = (640, 360),
    seed: int = 0,
    objects: tuple[int, int] = (6, 10),
    collide: bool = False,
    radius: tuple[float, float] = (0.05, 0.15),
) -> Iterator[tuple[np.ndarray, GroundTruth]]:
    """Yield ``(bgr_image, ground_truth)`` for each frame of a deterministic moving scene.

    Shapes keep their class and z-order, move in straight lines, bounce off the frame edges and
    spin; the background pans slowly; each frame gets fresh sensor grain. Shapes may pass over one
    another (``GroundTruth.visible`` says how much of each one shows), or, with ``collide``,
    bounce off each other once they overlap by a fifth of their radii, so that none is ever hidden.
    ``radius`` is the range of the shapes' radii as fractions of the shorter frame side.
    """
    for image, truth, _ in scene_states(seconds, fps, size, seed, objects, collide, radius):
        yield image, truth


def scene_states(
    seconds: float = 10.0,
    fps: float = 30.0,
    size: tuple[int, int] = (640, 360),
    seed: int = 0,
    objects: tuple[int, int] = (6, 10),
    collide: bool = False,
    radius: tuple[float, float] = (0.05, 0.15),
) -> Iterator[tuple[np.ndarray, GroundTruth, list[Shape]]]:
    """``scene_frames`` that also yields each frame's shapes (copies, bottom first): their masks
    (``scenes.instance_masks``) and vertices (``scenes.keypoints``) are the exact truth."""
    width, height = size
    if width < 64 or height < 64:
        raise ValueError(f"clip size must be at least 64x64, got {width}x{height}")
    rng = np.random.default_rng(seed)
    margin_x, margin_y = width // 4, height // 4
    canvas = make_background(width + margin_x, height + margin_y, rng)
    short = min(width, height)
    shapes: list[Shape] = []
    for _ in range(int(rng.integers(objects[0], objects[1] + 1))):
        shape = random_shape(width, height, rng, (radius[0] * short, radius[1] * short), canvas[:height, :width])
        shape.x = float(np.clip(shape.x, shape.radius, width - shape.radius))
        shape.y = float(np.clip(shape.y, shape.radius, height - shape.radius))
        speed = rng.uniform(0.6, 3.0) * short / 360
        direction = rng.uniform(0, 2 * math.pi)
        shape.vx, shape.vy = speed * math.cos(direction), speed * math.sin(direction)
        shape.spin = float(rng.uniform(-0.04, 0.04))
        shapes.append(shape)
    grain = [rng.normal(0, 2.5, (height, width, 1)).astype(np.int16) for _ in range(8)]
    count = max(round(seconds * fps), 1)
    period_x, period_y = rng.uniform(6, 12) * fps, rng.uniform(8, 16) * fps
    for index in range(count):
        ox = int(margin_x * 0.5 * (1 - math.cos(2 * math.pi * index / period_x)))
        oy = int(margin_y * 0.5 * (1 - math.cos(2 * math.pi * index / period_y)))
        image, truth = render(canvas[oy : oy + height, ox : ox + width], shapes)
        noisy = np.clip(image.astype(np.int16) + grain[index % len(grain)], 0, 255).astype(np.uint8)
        yield noisy, truth, [replace(shape) for shape in shapes]
        for shape in shapes:
            shape.x += shape.vx
            shape.y += shape.vy
            shape.angle += shape.spin
            if not shape.radius <= shape.x <= width - shape.radius:
                shape.vx = -shape.vx
                shape.x = float(np.clip(shape.x, shape.radius, width - shape.radius))
            if not shape.radius <= shape.y <= height - shape.radius:
                shape.vy = -shape.vy
                shape.y = float(np.clip(shape.y, shape.radius, height - shape.radius))
        if collide:
            _bounce_apart(shapes)


def _bounce_apart(shapes: list[Shape], overlap: float = 0.2) -> None:
    """Elastic collisions (equal masses) between shapes closer than ``(1 - overlap)`` of their radii."""
    for i, a in enumerate(shapes):
        for b in shapes[i + 1 :]:
            dx, dy = b.x - a.x, b.y - a.y
            distance = math.hypot(dx, dy) or 1e-6
            limit = (a.radius + b.radius) * (1 - overlap)
            if distance >= limit:
                continue
            nx, ny = dx / distance, dy / distance
            closing = (a.vx - b.vx) * nx + (a.vy - b.vy) * ny
            if closing > 0:  # moving towards each other: exchange their velocities along the normal
                a.vx, a.vy = a.vx - closing * nx, a.vy - closing * ny
                b.vx, b.vy = b.vx + closing * nx, b.vy + closing * ny
            push = (limit - distance) / 2
            a.x, a.y = a.x - nx * push, a.y - ny * push
            b.x, b.y = b.x + nx * push, b.y + ny * push


def make_clip(
    path: str | os.PathLike[str],
    seconds: float = 10.0,
    fps: float = 30.0,
    size: tuple[int, int] = (640, 360),
    seed: int = 0,
    truth_path: str | os.PathLike[str] | None = None,
    collide: bool = False,
    objects: tuple[int, int] = (6, 10),
    radius: tuple[float, float] = (0.05, 0.15),
    scene_seconds: float | None = None,
) -> ClipInfo:
    """Write an H.264 MP4 of a moving shapes scene and its ground truth.

    The ground truth (default: the video path with ``.jsonl``) has one JSON object per frame:
    ``{"frame_index": i, "pts_seconds": t, "objects": [{"class_id", "class", "box", "visible",
    "pose"}]}`` with ``frame_index`` counting from 0, ``box`` as ``[x1, y1, x2, y2]`` pixels and
    ``pose`` the shape's ``{x, y, radius, angle}`` (``read_shapes`` rebuilds the shapes from it,
    for masks and vertices). The same ``seed`` always gives the same frames and truth.
    ``scene_seconds`` cuts to a new scene (seed, shapes, background) every so many seconds, e.g.
    single-shape scenes for a classifier (``objects=(1, 1)``).
    """
    video_path = os.fspath(path)
    truth = os.fspath(truth_path) if truth_path is not None else os.path.splitext(video_path)[0] + ".jsonl"
    total = max(round(seconds * fps), 1)
    per_scene = total if scene_seconds is None else max(round(scene_seconds * fps), 1)
    frames = 0
    with H264Writer(video_path, fps=fps) as writer, open(truth, "w", encoding="utf-8") as lines:
        for scene in range(-(-total // per_scene)):
            length = min(per_scene, total - frames)
            scene_seed = seed if scene_seconds is None else seed * 1009 + scene
            states = scene_states(length / fps, fps, size, scene_seed, objects, collide, radius)
            for image, gt, shapes in states:
                writer.write(image)
                described = gt.to_json()
                for item, shape in zip(described, shapes, strict=True):
                    item["pose"] = {k: round(getattr(shape, k), 4) for k in ("x", "y", "radius", "angle")}
                record = {"frame_index": frames, "pts_seconds": round(frames / fps, 6), "objects": described}
                lines.write(json.dumps(record) + "\n")
                frames += 1
    return ClipInfo(video_path, truth, frames, fps, size[0], size[1])


def read_shapes(path: str | os.PathLike[str]) -> list[list[Shape]]:
    """The shapes of each frame of a ground-truth file written by ``make_clip`` (colours are not
    kept: only class and pose)."""
    result: list[list[Shape]] = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                objects = json.loads(line)["objects"]
                result.append([Shape(o["class_id"], color=(0, 0, 0), **o["pose"]) for o in objects])
    return result


def read_truth(path: str | os.PathLike[str]) -> list[GroundTruth]:
    """Load a ground-truth JSON-lines file written by ``make_clip``, indexed by frame."""
    result: list[GroundTruth] = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            if record.get("frame_index") != len(result):
                raise ValueError(f"{os.fspath(path)}:{number}: expected frame_index {len(result)}")
            objects = record["objects"]
            result.append(
                GroundTruth(
                    boxes=np.array([o["box"] for o in objects], np.float32).reshape(-1, 4),
                    class_ids=np.array([o["class_id"] for o in objects], np.int64),
                    visible=np.array([o["visible"] for o in objects], np.float32),
                )
            )
    return result
