"""``render_boxes``: draw predictions on frames with supervision's annotators and show them.

With Roboflow's parameters: the annotated frame goes to ``on_frame_rendered`` as one
``(source_id, image)`` tuple (a list of them for several sources); the default shows it in an
OpenCV window, or, where there is no display, says so once and carries on.

Example:
    >>> from functools import partial
    >>> from framepipe.sinks import render_boxes
    >>> frames = []
    >>> sink = partial(render_boxes, on_frame_rendered=frames.append, display_size=None)
    >>> # pipeline = InferencePipeline.init(..., on_prediction=sink)
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import cv2
import numpy as np
import supervision as sv  # imported with the module, not on the first frame: it takes about a second

from framepipe.models.preprocess import letterbox
from framepipe.sinks.annotators import ClassLabelAnnotator, MaskFillAnnotator, Scene, edge_annotator, scene_of
from framepipe.sources.entities import VideoFrame

logger = logging.getLogger("framepipe.sinks")

ImageWithSourceID = tuple[int | None, np.ndarray]
FrameRenderedHandler = Callable[[Any], None]


DEFAULT_ANNOTATORS: list[Any] = [sv.BoxAnnotator(), sv.LabelAnnotator()]
"""Boxes, then labels with class, confidence and tracker id (Roboflow's render_boxes default).
Segmentation masks, keypoints and class labels are drawn around them by task (see
``framepipe.sinks.annotators``)."""

DEFAULT_FPS_MONITOR = sv.FPSMonitor()
"""The monitor render_boxes ticks once per frame unless given another one, or ``None``."""


def display_available() -> bool:
    """Whether an OpenCV window can be shown: on Linux a ``DISPLAY`` or ``WAYLAND_DISPLAY``."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class _Window:
    warned = False
    failed = False


def display_image(image: ImageWithSourceID | list[ImageWithSourceID]) -> None:
    """Show one ``(source_id, image)`` (or a list, tiled) in an OpenCV window.

    Where no display exists it logs once and does nothing, so a headless pipeline keeps running.
    """
    if _Window.failed or not display_available():
        if not _Window.warned:
            _Window.warned = True
            logger.warning(
                "no display available: render_boxes shows no window (pass on_frame_rendered=... to use the frames)"
            )
        return
    if isinstance(image, list):
        title, picture = "Predictions - tiles", create_tiles([img for _, img in image])
    else:
        source_id, picture = image
        title = f"Predictions - video: {source_id if source_id is not None else 'N/A'}"
    try:
        cv2.imshow(title, picture)
        cv2.waitKey(1)
    except cv2.error as error:
        _Window.failed = True
        logger.warning("cannot open an OpenCV window (%s); render_boxes goes on without one", error)


def create_tiles(images: Sequence[np.ndarray], margin: int = 15) -> np.ndarray:
    """Tile images in a grid (one row up to 3 images, else about square), each letterboxed to
    their average size, with white margins."""
    if not images:
        return np.zeros((256, 256, 3), np.uint8)
    width = int(np.mean([img.shape[1] for img in images]))
    height = int(np.mean([img.shape[0] for img in images]))
    count = len(images)
    columns = count if count <= 3 else int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    canvas = np.full((rows * height + (rows + 1) * margin, columns * width + (columns + 1) * margin, 3), 255, np.uint8)
    for index, image in enumerate(images):
        r, c = divmod(index, columns)
        y, x = margin + r * (height + margin), margin + c * (width + margin)
        letterbox(image, width, height, (0, 0, 0), out=canvas[y : y + height, x : x + width])
    return canvas


def _labels(detections: sv.Detections) -> list[str]:
    names = detections.data.get("class_name", [])
    labels = []
    for index in range(len(detections)):
        name = (
            str(names[index])
            if len(names) > index
            else str(detections.class_id[index] if detections.class_id is not None else "")
        )
        text = name
        if detections.confidence is not None:
            text += f" {detections.confidence[index]:.2f}"
        if detections.tracker_id is not None and detections.tracker_id[index] >= 0:
            text = f"#{detections.tracker_id[index]} {text}"
        labels.append(text)
    return labels


_KEYPOINT_ANNOTATORS = (sv.VertexAnnotator, sv.EdgeAnnotator, sv.VertexLabelAnnotator)


def _with_masks(scene: Scene, image: np.ndarray) -> sv.Detections:
    """The scene's detections with full-frame masks filled from its polygons, for a user's
    annotator that needs ``mask`` (made only then: they are large)."""
    detections = scene.detections
    if detections.mask is not None or not scene.polygons or len(scene.polygons) != len(detections):
        return detections
    masks = np.zeros((len(detections), *image.shape[:2]), np.uint8)
    for index, polygon in enumerate(scene.polygons):
        if len(polygon) >= 3:
            cv2.fillPoly(masks[index], [np.round(polygon).astype(np.int32).reshape(-1, 1, 2)], 1)
    detections.mask = masks.astype(bool)
    return detections


def _default_drawing(annotated: np.ndarray, scene: Scene) -> np.ndarray:
    if scene.labels:
        return ClassLabelAnnotator().annotate(annotated, scene.labels)
    if scene.detections.mask is not None or scene.polygons:
        annotated = MaskFillAnnotator().annotate(annotated, scene.detections, scene.polygons)
    for item in DEFAULT_ANNOTATORS:
        annotated = _apply(item, annotated, scene)
    if scene.key_points is not None and len(scene.key_points):
        edges = edge_annotator(scene.edges, scene.key_points)
        if edges is not None:
            annotated = edges.annotate(annotated, scene.key_points)
        annotated = sv.VertexAnnotator(color=sv.Color.ROBOFLOW, radius=4).annotate(annotated, scene.key_points)
    return annotated


def _apply(item: Any, annotated: np.ndarray, scene: Scene) -> np.ndarray:
    if isinstance(item, ClassLabelAnnotator):
        return item.annotate(annotated, scene.labels)
    if isinstance(item, _KEYPOINT_ANNOTATORS):
        return item.annotate(annotated, scene.key_points) if scene.key_points is not None else annotated
    if isinstance(item, MaskFillAnnotator):
        return item.annotate(annotated, scene.detections, scene.polygons)
    if isinstance(item, sv.LabelAnnotator | sv.RichLabelAnnotator):
        return item.annotate(annotated, scene.detections, labels=_labels(scene.detections))
    if isinstance(item, sv.MaskAnnotator | sv.PolygonAnnotator | sv.HaloAnnotator):
        return item.annotate(annotated, _with_masks(scene, annotated))
    return item.annotate(annotated, scene.detections)


def annotate(image: np.ndarray, prediction: dict[str, Any] | None, annotator: Any = None) -> np.ndarray:
    """A copy of ``image`` with a prediction of any task drawn on it (see
    ``framepipe.sinks.annotators``). ``annotator``: a supervision annotator or a list of them,
    instead of the task's default drawing; keypoint annotators get ``sv.KeyPoints``, mask
    annotators get masks made from the polygons."""
    annotated = image.copy()
    if not prediction:
        return annotated
    try:
        scene = scene_of(prediction)
    except (KeyError, TypeError, ValueError) as error:
        logger.warning("cannot draw these predictions (%s); showing the plain frame", error)
        return annotated
    if not annotator:
        return _default_drawing(annotated, scene)
    for item in annotator if isinstance(annotator, (list, tuple)) else [annotator]:
        annotated = _apply(item, annotated, scene)
    return annotated


def _statistics(image: np.ndarray, frame: VideoFrame, fps: float | None) -> None:
    latency_ms = (datetime.now() - frame.frame_timestamp).total_seconds() * 1000
    height = image.shape[0]
    cv2.putText(
        image, f"LATENCY: {latency_ms:.0f} ms", (10, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 255, 0), 2
    )
    if fps is not None:
        cv2.putText(image, f"THROUGHPUT: {fps:.1f}", (10, height - 50), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 255, 0), 2)


def render_boxes(
    predictions: dict[str, Any] | list[dict[str, Any] | None] | None,
    video_frame: VideoFrame | list[VideoFrame | None] | None,
    annotator: Any = None,
    display_size: tuple[int, int] | None = (1280, 720),
    fps_monitor: Any = DEFAULT_FPS_MONITOR,
    display_statistics: bool = False,
    on_frame_rendered: FrameRenderedHandler = display_image,
) -> None:
    """Draw predictions on their frames and pass the result to ``on_frame_rendered``.

    Works for one frame (``on_frame_rendered((source_id, image))``) or the lists a multi-source
    pipeline delivers (``on_frame_rendered([(index, image), ...])``, a black tile where a source
    had no frame). ``annotator`` is a supervision annotator or a list of them (default, by task:
    boxes and labels with class, confidence and tracker id; translucent masks under them for
    segmentation; skeleton edges and keypoints over them for keypoints; the top class and its
    confidence for classification); ``display_size`` letterboxes
    each image to ``(width, height)`` (``None`` keeps the frame's size); ``fps_monitor`` (a
    ``supervision.FPSMonitor``, ``None`` for none) is ticked once per frame and shown with the
    latency when ``display_statistics``.
    """
    monitor = fps_monitor
    as_list = isinstance(video_frame, list)
    frames = video_frame if isinstance(video_frame, list) else [video_frame]
    results = predictions if isinstance(predictions, list) else [predictions]
    rendered: list[ImageWithSourceID] = []
    for index, (prediction, frame) in enumerate(zip(results, frames, strict=True)):
        if frame is None:
            rendered.append((index, np.zeros((256, 256, 3), np.uint8)))
            continue
        if monitor is not None:
            monitor.tick()
        image = annotate(frame.image, prediction, annotator)
        if display_size is not None:
            image, _ = letterbox(image, display_size[0], display_size[1], (0, 0, 0))
        if display_statistics:
            _statistics(image, frame, float(monitor.fps) if monitor is not None else None)
        rendered.append((index if as_list else frame.source_id, image))
    on_frame_rendered(rendered if as_list else rendered[0])
