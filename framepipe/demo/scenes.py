"""Synthetic scenes of coloured shapes on textured, moving backgrounds, with exact ground truth.

The same generator feeds the training of the bundled ``framepipe-shapes`` detector and the demo
clips that measure it, so what the model is scored on is drawn exactly as it was taught.

Example:
    >>> import numpy as np
    >>> from framepipe.demo.scenes import random_scene
    >>> image, truth = random_scene(640, 360, np.random.default_rng(0))
    >>> image.shape, truth.boxes.shape[1]
    ((360, 640, 3), 4)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "star")
"""Class names of the demo detector, in class-id order."""

CLASS_COLORS: dict[str, str] = {
    "circle": "#4892EA",
    "square": "#00EEC3",
    "triangle": "#FE4EF0",
    "star": "#FA7200",
}
"""Display colours per class (Roboflow's palette), written into ``environment.json``."""

_SHIFT = 4  # sub-pixel bits for cv2 drawing
_SCALE = 1 << _SHIFT
# cv2 puts integer coordinates at pixel centres; boxes treat pixel i as the span [i, i + 1]


def _fixed(value: np.ndarray | float) -> np.ndarray:
    """Continuous image coordinates to cv2's fixed-point pixel-centre coordinates."""
    return np.round((np.asarray(value, np.float64) - 0.5) * _SCALE).astype(np.int32)


_STAR_INNER = 0.45


@dataclass
class Shape:
    """One object of a scene: its class, pose and look.

    ``radius`` is the circumradius in pixels (for a circle, its radius); ``angle`` is in radians;
    ``vx``, ``vy`` (pixels per frame) and ``spin`` (radians per frame) move it in a clip.
    """

    class_id: int
    x: float
    y: float
    radius: float
    angle: float
    color: tuple[int, int, int]
    outline: tuple[int, int, int] | None = None
    vx: float = 0.0
    vy: float = 0.0
    spin: float = 0.0

    def vertices(self) -> np.ndarray | None:
        """Polygon vertices as an ``(N, 2)`` float array, or ``None`` for a circle."""
        name = CLASS_NAMES[self.class_id]
        if name == "circle":
            return None
        if name == "square":
            angles = self.angle + np.arange(4) * (math.pi / 2)
            radii = np.full(4, self.radius)
        elif name == "triangle":
            angles = self.angle + np.arange(3) * (2 * math.pi / 3)
            radii = np.full(3, self.radius)
        else:  # star: 5 outer and 5 inner points
            angles = self.angle + np.arange(10) * (math.pi / 5)
            radii = np.where(np.arange(10) % 2 == 0, self.radius, self.radius * _STAR_INNER)
        return np.stack([self.x + radii * np.cos(angles), self.y + radii * np.sin(angles)], axis=1)

    def box(self) -> tuple[float, float, float, float]:
        """The exact axis-aligned box ``(x1, y1, x2, y2)`` of the whole shape, unclipped."""
        points = self.vertices()
        if points is None:
            return (self.x - self.radius, self.y - self.radius, self.x + self.radius, self.y + self.radius)
        x1, y1 = points.min(axis=0)
        x2, y2 = points.max(axis=0)
        return (float(x1), float(y1), float(x2), float(y2))


@dataclass
class GroundTruth:
    """Boxes of the objects in one image (``xyxy`` pixels, clipped to the image), their class ids
    and the fraction of each object that is visible (not hidden by objects above it or the frame
    edge)."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    class_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    visible: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))

    def to_json(self) -> list[dict[str, object]]:
        """One dict per object: ``class_id``, ``class``, ``box`` ``[x1, y1, x2, y2]``, ``visible``."""
        return [
            {
                "class_id": int(c),
                "class": CLASS_NAMES[int(c)],
                "box": [round(float(v), 2) for v in b],
                "visible": round(float(v), 3),
            }
            for b, c, v in zip(self.boxes, self.class_ids, self.visible, strict=True)
        ]


def _fill(canvas: np.ndarray, shape: Shape, color: tuple[int, ...] | int, antialias: bool) -> None:
    line = cv2.LINE_AA if antialias else cv2.LINE_8
    points = shape.vertices()
    if points is None:
        center = (int(_fixed(shape.x)), int(_fixed(shape.y)))
        cv2.circle(canvas, center, round(shape.radius * _SCALE), color, -1, line, _SHIFT)
    else:
        cv2.fillPoly(canvas, [_fixed(points)], color, line, _SHIFT)


def _stroke(canvas: np.ndarray, shape: Shape, color: tuple[int, int, int], thickness: int) -> None:
    points = shape.vertices()
    if points is None:
        center = (int(_fixed(shape.x)), int(_fixed(shape.y)))
        radius = round((shape.radius - thickness / 2) * _SCALE)
        cv2.circle(canvas, center, radius, color, thickness, cv2.LINE_AA, _SHIFT)
    else:
        # draw the outline inside the polygon so that the box stays exact
        inner = Shape(shape.class_id, shape.x, shape.y, max(shape.radius - thickness * 0.7, 1.0), shape.angle, color)
        vertices = inner.vertices()
        assert vertices is not None
        cv2.polylines(canvas, [_fixed(vertices)], True, color, thickness, cv2.LINE_AA, _SHIFT)


def _full_area(shape: Shape) -> float:
    points = shape.vertices()
    if points is None:
        return math.pi * shape.radius**2
    x, y = points[:, 0], points[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def visibility(
    shapes: list[Shape], width: int, height: int, roi: tuple[int, int, int, int] | None = None
) -> np.ndarray:
    """Fraction of each shape's area that is on top and inside a ``width`` x ``height`` image.

    With ``roi`` (``x1, y1, x2, y2`` inside the image) only that window is drawn: exact for every
    shape that lies wholly inside it, cheaper when a scene is being built up.
    """
    if not shapes:
        return np.zeros((0,), np.float32)
    x0, y0, x1, y1 = roi or (0, 0, width, height)
    ids = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for index, shape in enumerate(shapes):
        _fill(ids, replace(shape, x=shape.x - x0, y=shape.y - y0), index + 1, antialias=False)
    counts = np.bincount(ids.ravel(), minlength=len(shapes) + 1)[1:]
    areas = np.array([_full_area(s) for s in shapes], np.float64)
    return np.clip(counts / np.maximum(areas, 1.0), 0.0, 1.0).astype(np.float32)


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def render(background: np.ndarray, shapes: list[Shape]) -> tuple[np.ndarray, GroundTruth]:
    """Draw ``shapes`` in order (later ones on top) over a copy of ``background``.

    Returns the image and its ground truth; ``visible`` counts the pixels of each shape that end up
    on top and inside the image, over the shape's whole area.
    """
    image = background.copy()
    height, width = image.shape[:2]
    for shape in shapes:
        _fill(image, shape, shape.color, antialias=True)
        if shape.outline is not None:
            _stroke(image, shape, shape.outline, max(2, round(shape.radius / 10)))
    boxes = np.array([s.box() for s in shapes], np.float32).reshape(-1, 4)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    class_ids = np.array([s.class_id for s in shapes], np.int64)
    return image, GroundTruth(boxes, class_ids, visibility(shapes, width, height))


def _muted_color(rng: np.random.Generator) -> np.ndarray:
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(0, 90), rng.uniform(60, 200)]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def make_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A textured BGR canvas: muted colour clouds, grain, a pattern and clutter that is no class.

    Example:
        >>> canvas = make_background(320, 240, np.random.default_rng(1))
        >>> canvas.shape, canvas.dtype
        ((240, 320, 3), dtype('uint8'))
    """
    cells = rng.integers(2, 7)
    clouds = np.stack([_muted_color(rng) for _ in range(cells * cells)]).reshape(cells, cells, 3)
    canvas = np.asarray(cv2.resize(clouds, (width, height), interpolation=cv2.INTER_CUBIC), np.float32)
    grain = cv2.resize(rng.normal(0, 1, (max(height // 6, 2), max(width // 6, 2))).astype(np.float32), (width, height))
    canvas += grain[..., None] * rng.uniform(4, 16)
    half_w, half_h = (width + 1) // 2, (height + 1) // 2
    yy, xx = np.mgrid[0:half_h, 0:half_w].astype(np.float32) * 2
    pattern = rng.integers(0, 5)
    theta = rng.uniform(0, math.pi)
    period = rng.uniform(12, 60)
    u = xx * math.cos(theta) + yy * math.sin(theta)
    v = -xx * math.sin(theta) + yy * math.cos(theta)
    texture: np.ndarray | None = None
    if pattern == 1:  # stripes
        texture = np.sin(u * (2 * math.pi / period)) * rng.uniform(6, 22)
    elif pattern == 2:  # soft checkerboard
        check = np.sign(np.sin(u * (math.pi / period)) * np.sin(v * (math.pi / period)))
        texture = cv2.GaussianBlur(check.astype(np.float32), (0, 0), 0.8) * rng.uniform(6, 18)
    elif pattern == 3:  # wood-like rings
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        texture = np.sin(np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) * (2 * math.pi / period)) * rng.uniform(6, 18)
    elif pattern == 4:  # grid of thin lines
        texture = -((np.mod(u, period) < 2.5) | (np.mod(v, period) < 2.5)).astype(np.float32) * rng.uniform(10, 30)
    if texture is not None:
        canvas += cv2.resize(texture.astype(np.float32), (width, height))[..., None]
    image = np.clip(canvas, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(8, 40))):  # clutter: lines, arcs and elongated blobs
        color = tuple(int(c) for c in np.clip(_muted_color(rng) + rng.normal(0, 20, 3), 0, 255))
        kind = rng.integers(0, 3)
        x, y = int(rng.uniform(0, width)), int(rng.uniform(0, height))
        size = int(rng.uniform(8, max(min(width, height) / 5, 10)))
        if kind == 0:
            end = (x + int(rng.normal(0, size * 2)), y + int(rng.normal(0, size * 2)))
            cv2.line(image, (x, y), end, color, int(rng.integers(1, 4)), cv2.LINE_AA)
        elif kind == 1:
            axes = (size, max(size // int(rng.integers(2, 6)), 2))
            cv2.ellipse(image, (x, y), axes, rng.uniform(0, 180), 0, rng.uniform(60, 300), color, 2, cv2.LINE_AA)
        else:
            axes = (size, max(int(size / rng.uniform(2.2, 5)), 2))
            cv2.ellipse(image, (x, y), axes, rng.uniform(0, 180), 0, 360, color, -1, cv2.LINE_AA)
    return image


def _shape_color(rng: np.random.Generator, under: np.ndarray) -> tuple[int, int, int]:
    """A saturated colour that stands out from ``under`` (the mean colour below the shape)."""
    for _ in range(20):
        hsv = np.array([[[rng.uniform(0, 180), rng.uniform(130, 255), rng.uniform(90, 255)]]], np.uint8)
        color = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)
        if float(np.linalg.norm(color - under)) > 80:
            break
    return (int(color[0]), int(color[1]), int(color[2]))


def random_shape(
    width: int, height: int, rng: np.random.Generator, radius_range: tuple[float, float], background: np.ndarray
) -> Shape:
    """A shape of random class, size, rotation and colour whose centre lies inside the image."""
    radius = float(rng.uniform(*radius_range))
    x, y = float(rng.uniform(0, width)), float(rng.uniform(0, height))
    x1, y1 = int(max(x - radius, 0)), int(max(y - radius, 0))
    x2, y2 = int(min(x + radius, width)) + 1, int(min(y + radius, height)) + 1
    under = background[y1:y2, x1:x2].reshape(-1, 3).mean(axis=0)
    color = _shape_color(rng, under)
    outline = None
    if rng.random() < 0.35:
        factor = rng.choice([0.45, 1.6])
        outline = tuple(int(c) for c in np.clip(np.array(color) * factor, 0, 255))
    return Shape(
        class_id=int(rng.integers(0, len(CLASS_NAMES))),
        x=x,
        y=y,
        radius=radius,
        angle=float(rng.uniform(0, 2 * math.pi)),
        color=color,
        outline=outline,  # type: ignore[arg-type]
    )


def random_scene(
    width: int,
    height: int,
    rng: np.random.Generator,
    count: tuple[int, int] = (3, 12),
    radius_range: tuple[float, float] | None = None,
    min_visible: float = 0.55,
    cluster: float = 0.0,
) -> tuple[np.ndarray, GroundTruth]:
    """A still scene: a fresh background and a random number of shapes that may overlap, none of
    them hidden below ``min_visible`` of its area. ``cluster`` is the chance that a new shape is
    put right next to one already placed, so that the two overlap.

    ``radius_range`` defaults to 4 % to 16 % of the shorter image side.
    """
    image, truth, _ = random_scene_shapes(width, height, rng, count, radius_range, min_visible, cluster)
    return image, truth


def random_scene_shapes(
    width: int,
    height: int,
    rng: np.random.Generator,
    count: tuple[int, int] = (3, 12),
    radius_range: tuple[float, float] | None = None,
    min_visible: float = 0.55,
    cluster: float = 0.0,
) -> tuple[np.ndarray, GroundTruth, list[Shape]]:
    """``random_scene`` that also returns its shapes (bottom first), for masks and keypoints."""
    background = make_background(width, height, rng)
    short = min(width, height)
    radii = radius_range or (0.04 * short, 0.16 * short)
    shapes: list[Shape] = []
    target = int(rng.integers(count[0], count[1] + 1))
    for _ in range(target * 4):
        if len(shapes) == target:
            break
        candidate = random_shape(width, height, rng, radii, background)
        if shapes and rng.random() < cluster:
            neighbour = shapes[int(rng.integers(len(shapes)))]
            distance = (neighbour.radius + candidate.radius) * rng.uniform(0.45, 1.0)
            direction = rng.uniform(0, 2 * math.pi)
            candidate.x = float(np.clip(neighbour.x + distance * math.cos(direction), 0, width - 1))
            candidate.y = float(np.clip(neighbour.y + distance * math.sin(direction), 0, height - 1))
        box = candidate.box()
        near = [i for i, s in enumerate(shapes) if _overlaps(box, s.box())]
        boxes = np.array([box] + [shapes[i].box() for i in near])
        roi = (
            max(int(boxes[:, 0].min()), 0),
            max(int(boxes[:, 1].min()), 0),
            min(int(np.ceil(boxes[:, 2].max())) + 1, width),
            min(int(np.ceil(boxes[:, 3].max())) + 1, height),
        )
        # only the candidate and the shapes it covers can lose visibility
        if visibility([*shapes, candidate], width, height, roi)[[*near, -1]].min() >= min_visible:
            shapes.append(candidate)
    image, truth = render(background, shapes)
    return image, truth, shapes


def id_map(
    shapes: list[Shape], size: tuple[int, int], scale: float = 1.0, offset: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """``(height, width)`` ``uint8`` map of which shape is on top at each pixel (``index + 1``,
    ``0`` for none), with the shapes scaled by ``scale`` and moved by ``offset`` (e.g. into a
    model's letterboxed input). cv2 fills every pixel the outline touches, so small shapes come out
    too large here: ``instance_masks`` supersamples. At most 254 shapes."""
    width, height = size
    ids = np.zeros((height, width), np.uint8)
    for index, shape in enumerate(shapes):
        moved = replace(
            shape, x=shape.x * scale + offset[0], y=shape.y * scale + offset[1], radius=shape.radius * scale
        )
        _fill(ids, moved, index + 1, antialias=False)
    return ids


def instance_masks(
    shapes: list[Shape],
    size: tuple[int, int],
    scale: float = 1.0,
    offset: tuple[float, float] = (0.0, 0.0),
    supersample: int = 4,
) -> np.ndarray:
    """``(M, height, width)`` boolean masks of the visible part of each shape (later shapes hide
    earlier ones): a pixel belongs to a shape when the shape covers at least half of it, counted
    on a ``supersample`` times finer grid. ``scale`` and ``offset`` as in ``id_map``.

    Example:
        >>> shape = Shape(0, 5.3, 5.7, 3.0, 0.0, (0, 0, 255))  # area 28.3
        >>> int(instance_masks([shape], (10, 10)).sum())
        28
    """
    width, height = size
    k = supersample
    # cv2 also fills the fine pixels the outline only touches: half a fine pixel less radius
    # evens that out (areas within about 1 % of the exact ones)
    shrunk = [replace(s, radius=max(s.radius - 0.5 / (scale * k), 0.0)) for s in shapes]
    fine = id_map(shrunk, (width * k, height * k), scale * k, (offset[0] * k, offset[1] * k))
    masks = np.zeros((len(shapes), height, width), bool)
    for index, shape in enumerate(shapes):
        x1, y1, x2, y2 = shape.box()
        c0, r0 = max(int(x1 * scale + offset[0]), 0), max(int(y1 * scale + offset[1]), 0)
        c1 = min(int(np.ceil(x2 * scale + offset[0])) + 1, width)
        r1 = min(int(np.ceil(y2 * scale + offset[1])) + 1, height)
        if c1 <= c0 or r1 <= r0:
            continue
        window = fine[r0 * k : r1 * k, c0 * k : c1 * k].reshape(r1 - r0, k, c1 - c0, k)
        masks[index, r0:r1, c0:c1] = (window == index + 1).sum(axis=(1, 3)) * 2 >= k * k
    return masks


KEYPOINT_NAMES: dict[str, tuple[str, ...]] = {
    "circle": (),
    "square": ("top", "corner_1", "corner_2", "corner_3"),
    "triangle": ("top", "corner_1", "corner_2"),
    "star": ("top", "inner_1", "tip_1", "inner_2", "tip_2", "inner_3", "tip_3", "inner_4", "tip_4", "inner_5"),
}
"""Keypoint names per class: the shape's vertices, clockwise (on screen) from the outer vertex
nearest straight up (``top``); a circle has none."""

MAX_KEYPOINTS = max(len(names) for names in KEYPOINT_NAMES.values())


def keypoints(shape: Shape) -> np.ndarray:
    """The shape's vertices ``(K, 2)`` in ``KEYPOINT_NAMES`` order (``(0, 2)`` for a circle).

    The order has to be canonical because the shapes are symmetric: vertex 0 is the outer vertex
    whose direction from the centre is nearest straight up, and the others follow clockwise.

    Example:
        >>> keypoints(Shape(1, 10.0, 10.0, 5.0, 0.0, (0, 0, 255))).round(1).tolist()
        [[10.0, 5.0], [15.0, 10.0], [10.0, 15.0], [5.0, 10.0]]
    """
    points = shape.vertices()
    if points is None:
        return np.zeros((0, 2), np.float64)
    step = 2 if CLASS_NAMES[shape.class_id] == "star" else 1  # only outer vertices lead
    outer = points[::step]
    up = np.arctan2(outer[:, 1] - shape.y, outer[:, 0] - shape.x) + math.pi / 2
    first = int(np.argmin(np.abs((up + math.pi) % (2 * math.pi) - math.pi))) * step
    return np.roll(points, -first, axis=0)
