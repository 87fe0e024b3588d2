"""Turning BGR frames into a model's input tensor, and boxes back into frame pixels.

Steps, in Roboflow's order: static crop, contrast, grayscale, resize (``Stretch to`` scales each
axis on its own; ``Fit (black|white|grey) edges in`` keeps the aspect ratio and pads, centred),
then BGR to RGB, scaling to 0..1 and, for models that want it, mean/std normalisation. The
geometry of each frame is kept, so that boxes go back to original-frame pixels exactly.

Example:
    >>> import numpy as np
    >>> from framepipe.models.environment import PreprocessingConfig
    >>> from framepipe.models.preprocess import Preprocessor
    >>> prepare = Preprocessor(PreprocessingConfig("Fit (grey edges) in"), input_size=(320, 320))
    >>> tensor, geometries = prepare([np.zeros((360, 640, 3), np.uint8)])
    >>> tensor.shape, geometries[0].pad_y
    ((1, 3, 320, 320), 70)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from framepipe.models.environment import (
    ULTRALYTICS_CLASSIFY,
    ULTRALYTICS_LETTERBOX,
    PreprocessingConfig,
    StaticCrop,
)


@dataclass(frozen=True)
class ResizeGeometry:
    """How a frame was placed in the model input.

    The resized image had ``source_size`` (width, height) and sat at ``offset`` in the original
    frame of ``frame_size`` (a static crop); in the input ``x_in = (x - offset_x) * scale_x + pad_x``.
    ``box_pad`` and ``point_pad`` (x, y) are the paddings boxes and points are mapped back by, when
    they differ from where the picture was put (Ultralytics' ``scale_boxes`` and ``scale_coords``).
    """

    source_size: tuple[int, int]
    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    offset_x: int = 0
    offset_y: int = 0
    frame_size: tuple[int, int] | None = None
    box_pad: tuple[float, float] | None = None
    point_pad: tuple[float, float] | None = None

    @property
    def resized_size(self) -> tuple[int, int]:
        """``(width, height)`` of the resized picture in the model input."""
        return round(self.source_size[0] * self.scale_x), round(self.source_size[1] * self.scale_y)

    @property
    def frame(self) -> tuple[int, int]:
        """``(width, height)`` of the original frame."""
        return self.frame_size or self.source_size

    def to_source(self, boxes: np.ndarray) -> np.ndarray:
        """Map ``(N, 4)`` xyxy boxes from model-input pixels to original-frame pixels, clipped to
        the part of the frame the model saw."""
        out = np.empty(boxes.shape, np.float32)
        width, height = self.source_size
        pad_x, pad_y = self.box_pad or (self.pad_x, self.pad_y)
        out[:, [0, 2]] = np.clip((boxes[:, [0, 2]] - pad_x) / self.scale_x, 0, width) + self.offset_x
        out[:, [1, 3]] = np.clip((boxes[:, [1, 3]] - pad_y) / self.scale_y, 0, height) + self.offset_y
        return out

    def points_to_source(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` x, y from model-input pixels to original-frame pixels, clipped to the
        part of the frame the model saw (as boxes are)."""
        out = np.empty(points.shape, np.float32)
        width, height = self.source_size
        pad_x, pad_y = self.point_pad or (self.pad_x, self.pad_y)
        out[..., 0] = np.clip((points[..., 0] - pad_x) / self.scale_x, 0, width) + self.offset_x
        out[..., 1] = np.clip((points[..., 1] - pad_y) / self.scale_y, 0, height) + self.offset_y
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


def ultralytics_letterbox_geometry(width: int, height: int, target_w: int, target_h: int) -> ResizeGeometry:
    """Ultralytics' ``LetterBox`` (``auto=False``, ``center=True``, scaling up too): one gain for
    both axes, the picture ``round(side * gain)`` pixels, the padding ``round(half - 0.1)`` before
    it. Ultralytics maps results back from the unrounded picture size instead: boxes by
    ``scale_boxes`` (padding ``round((target - side * gain) / 2 - 0.1)``), keypoints and outlines by
    ``scale_coords`` (padding ``(target - side * gain) / 2``), which can be a pixel off where the
    picture was put; the geometry keeps both, so that results equal its ``predict``'s.

    Example:
        >>> g = ultralytics_letterbox_geometry(1000, 501, 640, 640)
        >>> g.resized_size, g.pad_y, g.box_pad, [round(p, 2) for p in g.point_pad]
        ((640, 321), 159, (0, 160), [0.0, 159.68])
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    gain = min(target_h / height, target_w / width)
    new_w, new_h = round(width * gain), round(height * gain)
    left, top = round((target_w - new_w) / 2 - 0.1), round((target_h - new_h) / 2 - 0.1)
    half_w, half_h = (target_w - width * gain) / 2, (target_h - height * gain) / 2
    return ResizeGeometry(
        (width, height),
        gain,
        gain,
        left,
        top,
        box_pad=(round(half_w - 0.1), round(half_h - 0.1)),
        point_pad=(half_w, half_h),
    )


def letterbox(
    image: np.ndarray,
    target_w: int,
    target_h: int,
    color: tuple[int, int, int] = (114, 114, 114),
    out: np.ndarray | None = None,
    pad: bool = True,
    geometry_of: Callable[[int, int, int, int], ResizeGeometry] | None = None,
) -> tuple[np.ndarray, ResizeGeometry]:
    """Resize ``image`` into a ``target_h`` x ``target_w`` canvas padded with ``color``.

    ``out`` (a ``uint8`` array of the target shape) is reused when given; ``pad=False`` leaves its
    padding as it is (it already holds the padding of a frame of the same size); ``geometry_of``
    places the picture (default: Roboflow's ``letterbox_geometry``).
    """
    height, width = image.shape[:2]
    geometry = (geometry_of or letterbox_geometry)(width, height, target_w, target_h)
    new_w, new_h = geometry.resized_size
    if out is None:
        out = np.empty((target_h, target_w, *image.shape[2:]), np.uint8)
    x0, y0 = geometry.pad_x, geometry.pad_y
    if pad:
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
        out = np.empty((target_h, target_w, *image.shape[2:]), np.uint8)
    if (width, height) == (target_w, target_h):
        out[...] = image
    else:
        cv2.resize(image, (target_w, target_h), dst=out, interpolation=cv2.INTER_LINEAR)
    return out, ResizeGeometry((width, height), target_w / width, target_h / height, 0, 0)


def classify_crop(
    image: np.ndarray, target_w: int, target_h: int, out: np.ndarray | None = None
) -> tuple[np.ndarray, ResizeGeometry]:
    """Ultralytics' classification preprocessing: the shortest side resized to the target's with
    PIL's bilinear filter (torchvision's ``Resize``: the long side ``int(target * long / short)``),
    then the centre ``target_w`` x ``target_h`` cropped (offsets ``round(excess / 2)``).
    """
    from PIL import Image

    height, width = image.shape[:2]
    short = min(target_w, target_h)
    if width <= height:
        new_w, new_h = short, int(short * height / width)
    else:
        new_w, new_h = int(short * width / height), short
    rgb = Image.fromarray(np.ascontiguousarray(image[:, :, ::-1]))
    resized = np.asarray(rgb.resize((new_w, new_h), Image.Resampling.BILINEAR))
    top, left = round((new_h - target_h) / 2.0), round((new_w - target_w) / 2.0)
    crop = resized[max(top, 0) : max(top, 0) + target_h, max(left, 0) : max(left, 0) + target_w, ::-1]
    if out is None:
        out = np.zeros((target_h, target_w, 3), np.uint8)
    out[...] = 0
    out[: crop.shape[0], : crop.shape[1]] = crop
    scale = new_w / width, new_h / height
    return out, ResizeGeometry((width, height), scale[0], scale[1], -left, -top)


def static_crop(image: np.ndarray, crop: StaticCrop) -> tuple[np.ndarray, tuple[int, int]]:
    """The part of ``image`` inside ``crop`` (percent), and its top-left corner in ``image``."""
    height, width = image.shape[:2]
    x0, x1 = int(crop.x_min / 100 * width), int(crop.x_max / 100 * width)
    y0, y1 = int(crop.y_min / 100 * height), int(crop.y_max / 100 * height)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"static crop {crop} leaves nothing of a {width}x{height} frame")
    return image[y0:y1, x0:x1], (x0, y0)


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


_CLAHE = threading.local()


def adjust_contrast(image: np.ndarray, kind: str) -> np.ndarray:
    """Roboflow's three contrast steps on a BGR image.

    ``Contrast Stretching`` maps the 2nd-98th percentiles to the full range; ``Histogram
    Equalization`` equalises the grey image; ``Adaptive Equalization`` is CLAHE on the grey image
    with 8x8 tiles and skimage's clip limit 0.03 (7.68 in OpenCV's units). The last two return a
    grey image with three channels, as Roboflow's do.
    """
    if kind == "Contrast Stretching":
        low, high = np.percentile(image, (2, 98))
        if high <= low:
            return image.copy()
        scaled = (image.astype(np.float32) - low) * (255.0 / (high - low))
        return np.clip(scaled, 0, 255).astype(np.uint8)
    if kind == "Histogram Equalization":
        return cv2.cvtColor(cv2.equalizeHist(_gray(image)), cv2.COLOR_GRAY2BGR)
    if kind == "Adaptive Equalization":
        clahe = getattr(_CLAHE, "clahe", None)
        if clahe is None:
            clahe = _CLAHE.clahe = cv2.createCLAHE(clipLimit=0.03 * 256, tileGridSize=(8, 8))
        return cv2.cvtColor(clahe.apply(_gray(image)), cv2.COLOR_GRAY2BGR)
    raise ValueError(f"unknown contrast type {kind!r}")


class Preprocessor:
    """Applies a ``PreprocessingConfig`` and writes a ``[B, 3, H, W]`` RGB tensor.

    ``input_size`` is ``(width, height)``; ``dtype`` the network's input type (float32 or
    float16); ``mean`` / ``std`` (RGB, on the 0..1 scale) normalise when given. The tensor is
    written into ``PreprocessBuffers`` (by default this thread's own) and overwritten by the next
    call with the same buffers, so run the model on it before preprocessing the next batch.
    """

    def __init__(
        self,
        config: PreprocessingConfig,
        input_size: tuple[int, int],
        dtype: type[np.floating] = np.float32,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        self.config = config
        self.input_size = input_size
        self.dtype = np.dtype(dtype)
        self._mean = np.asarray(mean, np.float32).reshape(3, 1, 1) if mean is not None else None
        self._std = np.asarray(std, np.float32).reshape(3, 1, 1) if std is not None else None
        self._local = threading.local()
        self._pad = config.pad_color
        if self._pad is not None and mean is not None:
            # pad with the mean colour, so that padding is 0 after normalisation (as Roboflow's RF-DETR)
            r, g, b = (round(float(m) * 255) for m in mean)
            self._pad = (b, g, r)

    def buffers(self, capacity: int = 1) -> PreprocessBuffers:
        """A fresh set of reusable buffers for batches of up to ``capacity`` images (it grows
        when a larger batch comes)."""
        return PreprocessBuffers(self, capacity)

    def _local_buffers(self) -> PreprocessBuffers:
        buffers = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = PreprocessBuffers(self, 1)
        return buffers

    def prepare(
        self, image: np.ndarray, out: np.ndarray | None = None, pad: bool = True
    ) -> tuple[np.ndarray, ResizeGeometry]:
        """One BGR frame resized into a ``uint8`` BGR canvas of the input size (``pad=False``:
        the canvas already has this frame size's padding)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected a BGR uint8 image of shape (H, W, 3), got {image.dtype} {image.shape}")
        frame_h, frame_w = image.shape[:2]
        work, (offset_x, offset_y) = image, (0, 0)
        config = self.config
        if config.static_crop is not None:
            work, (offset_x, offset_y) = static_crop(work, config.static_crop)
        if config.contrast is not None:
            work = adjust_contrast(work, config.contrast)
        if config.grayscale:
            work = cv2.cvtColor(_gray(work), cv2.COLOR_GRAY2BGR)
        width, height = self.input_size
        color = self._pad
        if config.resize_format == ULTRALYTICS_CLASSIFY:
            canvas, geometry = classify_crop(work, width, height, out=out)
        elif color is None:
            canvas, geometry = stretch(work, width, height, out=out)
        else:
            ultralytics = config.resize_format == ULTRALYTICS_LETTERBOX
            placement = ultralytics_letterbox_geometry if ultralytics else None
            canvas, geometry = letterbox(work, width, height, color, out=out, pad=pad, geometry_of=placement)
        if (offset_x, offset_y) != (0, 0) or work.shape[:2] != image.shape[:2]:
            geometry = replace(geometry, offset_x=offset_x, offset_y=offset_y, frame_size=(frame_w, frame_h))
        return canvas, geometry

    def __call__(
        self, images: Sequence[np.ndarray], buffers: PreprocessBuffers | None = None
    ) -> tuple[np.ndarray, list[ResizeGeometry]]:
        """Preprocess a batch; returns the tensor (a view of ``buffers``, by default this thread's)
        and one geometry per image."""
        store = buffers if buffers is not None else self._local_buffers()
        tensor, canvas = store.take(len(images))
        padded = store.padded
        geometries = []
        for index, image in enumerate(images):
            # the padding of a slot is written once for a frame size, then only the picture is
            same = padded.get(index) == image.shape and self.config.static_crop is None
            _, geometry = self.prepare(image, out=canvas, pad=not same)
            if same and self._pad is not None:
                x0, y0 = geometry.pad_x, geometry.pad_y
                new_w, new_h = geometry.resized_size
                rows, cols = slice(y0, y0 + new_h), slice(x0, x0 + new_w)
                region, target = canvas[rows, cols], tensor[index, :, rows, cols]
            else:
                region, target = canvas, tensor[index]
            np.multiply(region.transpose(2, 0, 1)[::-1], np.float32(1 / 255), out=target, casting="unsafe")
            if self._mean is not None:
                target -= self._mean
            if self._std is not None:
                target /= self._std
            padded[index] = image.shape
            geometries.append(geometry)
        return tensor, geometries


class PreprocessBuffers:
    """The reusable input tensor (``[capacity, 3, H, W]``, allocated once for the largest batch
    seen) and canvas of one caller; a batch gets the first rows of the tensor, so batch sizes that
    change between calls reallocate nothing. Not thread-safe: one per thread or executor slot."""

    def __init__(self, preprocessor: Preprocessor, capacity: int = 1) -> None:
        width, height = preprocessor.input_size
        self._shape = (3, height, width)
        self._dtype = preprocessor.dtype
        self.tensor = np.empty((max(capacity, 1), *self._shape), self._dtype)
        self.canvas = np.empty((height, width, 3), np.uint8)
        self.padded: dict[int, tuple[int, ...]] = {}  # row -> frame shape whose padding the row holds

    def take(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``count`` rows of the tensor (grown if needed) and the canvas."""
        if count > len(self.tensor):
            self.tensor = np.empty((count, *self._shape), self._dtype)
            self.padded = {}
        return self.tensor[:count], self.canvas
