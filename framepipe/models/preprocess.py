"""Resizing frames to a model's input and mapping boxes back to the frame.

Roboflow's resize formats are kept: ``Stretch to`` scales each axis on its own; ``Fit (black|white|
grey) edges in`` keeps the aspect ratio and pads (letterbox). The geometry of each resize is kept
so that boxes go back to original-frame pixels exactly.

Example:
    >>> import numpy as np
    >>> from framepipe.models.preprocess import letterbox
    >>> canvas, geometry = letterbox(np.zeros((360, 640, 3), np.uint8), 320, 320)
    >>> canvas.shape, geometry.pad_y
    ((320, 320, 3), 70)
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PAD_COLORS: dict[str, tuple[int, int, int]] = {
    "Fit (black edges) in": (0, 0, 0),
    "Fit (white edges) in": (255, 255, 255),
    "Fit (grey edges) in": (114, 114, 114),
}
"""Letterbox formats of Roboflow's ``environment.json`` and their padding colours."""

STRETCH = "Stretch to"


@dataclass(frozen=True)
class ResizeGeometry:
    """How a frame of ``source_size`` was placed in the model input: ``x_in = x * scale_x + pad_x``."""

    source_size: tuple[int, int]  # (width, height) of the original frame
    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int

    def to_source(self, boxes: np.ndarray) -> np.ndarray:
        """Map ``(N, 4)`` xyxy boxes from model-input pixels back to the frame, clipped to it."""
        out = np.empty_like(boxes, dtype=np.float32)
        out[:, [0, 2]] = (boxes[:, [0, 2]] - self.pad_x) / self.scale_x
        out[:, [1, 3]] = (boxes[:, [1, 3]] - self.pad_y) / self.scale_y
        width, height = self.source_size
        np.clip(out[:, [0, 2]], 0, width, out=out[:, [0, 2]])
        np.clip(out[:, [1, 3]], 0, height, out=out[:, [1, 3]])
        return out


def letterbox_geometry(width: int, height: int, target_w: int, target_h: int) -> ResizeGeometry:
    """Fit ``width`` x ``height`` inside the target keeping the aspect ratio, centred (Roboflow's rule)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if width / height >= target_w / target_h:
        new_w, new_h = target_w, max(int(target_w * height / width), 1)
    else:
        new_w, new_h = max(int(target_h * width / height), 1), target_h
    return ResizeGeometry(
        (width, height), new_w / width, new_h / height, (target_w - new_w) // 2, (target_h - new_h) // 2
    )


def letterbox(
    image: np.ndarray,
    target_w: int,
    target_h: int,
    color: tuple[int, int, int] = (114, 114, 114),
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, ResizeGeometry]:
    """Resize ``image`` into a ``target_h`` x ``target_w`` canvas with padding of ``color``.

    ``out`` (a ``uint8`` array of the target shape) is reused when given, so a caller that keeps
    one buffer per stream allocates nothing per frame.
    """
    height, width = image.shape[:2]
    geometry = letterbox_geometry(width, height, target_w, target_h)
    new_w = round(width * geometry.scale_x)
    new_h = round(height * geometry.scale_y)
    if out is None:
        out = np.empty((target_h, target_w, 3), np.uint8)
    x0, y0 = geometry.pad_x, geometry.pad_y
    out[:y0] = color
    out[y0 + new_h :] = color
    out[y0 : y0 + new_h, :x0] = color
    out[y0 : y0 + new_h, x0 + new_w :] = color
    region = out[y0 : y0 + new_h, x0 : x0 + new_w]
    if (new_w, new_h) == (width, height):
        region[...] = image
    else:
        cv2.resize(image, (new_w, new_h), dst=region, interpolation=cv2.INTER_LINEAR)
    return out, geometry


def stretch(
    image: np.ndarray, target_w: int, target_h: int, out: np.ndarray | None = None
) -> tuple[np.ndarray, ResizeGeometry]:
    """Resize ``image`` to exactly ``target_w`` x ``target_h``, each axis scaled on its own."""
    height, width = image.shape[:2]
    if out is None:
        out = np.empty((target_h, target_w, 3), np.uint8)
    if (width, height) == (target_w, target_h):
        out[...] = image
    else:
        cv2.resize(image, (target_w, target_h), dst=out, interpolation=cv2.INTER_LINEAR)
    return out, ResizeGeometry((width, height), target_w / width, target_h / height, 0, 0)
