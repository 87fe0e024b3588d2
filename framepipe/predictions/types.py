"""The prediction types: ``Detections`` (numpy columns, like supervision's), ``Classification``
and ``FramePrediction``, what a model says about one frame.

Boxes are ``xyxy`` in original-frame pixels. Columns are validated when made, so a head that
builds a wrong shape fails where it builds it, not in a sink.

Example:
    >>> import numpy as np
    >>> from framepipe.predictions import Detections
    >>> found = Detections(np.array([[0, 0, 4, 4], [5, 5, 9, 9]], np.float32), np.array([0.9, 0.3]), np.array([0, 1]))
    >>> len(found), len(found[found.confidence > 0.5])
    (2, 1)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import supervision as sv


def _column(value: Any, dtype: type, name: str, count: int | None) -> np.ndarray:
    array: np.ndarray = np.asarray(value, dtype)
    if array.ndim != 1 or (count is not None and len(array) != count):
        raise ValueError(f"Detections.{name} must have shape ({count},), got {array.shape}")
    return array


@dataclass(eq=False)
class Detections:
    """Detected objects of one frame: ``xyxy`` ``(N, 4)`` float32 frame pixels, ``confidence``
    ``(N,)`` float32, ``class_id`` ``(N,)`` int64; ``tracker_id`` ``(N,)`` int64 (``-1``: not
    tracked) once a tracker has seen them; ``mask`` ``(N, H, W)`` bool (full-frame masks, kept
    only when asked for: they are large) and ``keypoints`` ``(N, K, 3)`` (x, y, confidence; a
    missing keypoint is ``0, 0, 0``) where the model gives them. A segmentation model also gives
    ``polygons`` (one ``(P, 2)`` float32 outline per object, frame pixels, the largest outer
    contour) and, when asked, ``rle`` (one COCO RLE dict per object, ``{"size": [H, W],
    "counts": str}``)."""

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    tracker_id: np.ndarray | None = None
    mask: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    polygons: list[np.ndarray] | None = None
    rle: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, np.float32).reshape(-1, 4)
        count = len(self.xyxy)
        self.confidence = _column(self.confidence, np.float32, "confidence", count)
        self.class_id = _column(self.class_id, np.int64, "class_id", count)
        if self.tracker_id is not None:
            self.tracker_id = _column(self.tracker_id, np.int64, "tracker_id", count)
        if self.mask is not None and (self.mask.ndim != 3 or len(self.mask) != count):
            raise ValueError(f"Detections.mask must have shape ({count}, H, W), got {self.mask.shape}")
        if self.keypoints is not None and (self.keypoints.ndim != 3 or len(self.keypoints) != count):
            raise ValueError(f"Detections.keypoints must have shape ({count}, K, 3), got {self.keypoints.shape}")
        for name in ("polygons", "rle"):
            column = getattr(self, name)
            if column is not None and len(column) != count:
                raise ValueError(f"Detections.{name} must hold {count} items, got {len(column)}")

    @staticmethod
    def empty() -> Detections:
        """No detections."""
        return Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Detections:
        """The detections chosen by a boolean mask, an index array or a slice."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]

        def pick(column: np.ndarray | None) -> np.ndarray | None:
            return None if column is None else column[index]

        def pick_list(column: list[Any] | None) -> list[Any] | None:
            if column is None:
                return None
            return [column[i] for i in np.arange(len(column))[index].tolist()]

        return Detections(
            self.xyxy[index],
            self.confidence[index],
            self.class_id[index],
            pick(self.tracker_id),
            pick(self.mask),
            pick(self.keypoints),
            pick_list(self.polygons),
            pick_list(self.rle),
        )

    def with_tracker_ids(self, tracker_id: np.ndarray) -> Detections:
        """A copy with ``tracker_id`` set (``-1`` for detections no tracker follows)."""
        return replace(self, tracker_id=np.asarray(tracker_id, np.int64))


@dataclass(eq=False)
class Classification:
    """Class scores of one frame: ``confidence`` ``(C,)`` float32 per class id (probabilities);
    ``threshold`` is the request's ``confidence``: a single-label JSON lists the classes at or
    above it (``top`` is the best class whatever its score), a ``multilabel`` one names the
    classes above it in ``predicted_classes`` (Roboflow's rule)."""

    confidence: np.ndarray
    multilabel: bool = False
    threshold: float = 0.5

    def __post_init__(self) -> None:
        self.confidence = _column(self.confidence, np.float32, "confidence", None)

    @property
    def top(self) -> int:
        """The best class id."""
        return int(np.argmax(self.confidence))

    @property
    def predicted(self) -> list[int]:
        """The class ids a multi-label model predicts: those scored above ``threshold``."""
        return np.flatnonzero(self.confidence > self.threshold).tolist()


@dataclass(eq=False)
class FramePrediction:
    """What a model reported for one frame: the frame's ``image_size`` (width, height), the
    model's ``class_names`` and ``task``, and ``detections`` or ``classification``. ``extra``
    holds anything else the model reported (kept as given in the JSON). A keypoint model gives
    ``keypoint_names``: per class id, the names of its keypoints (in keypoint order), and
    ``keypoint_edges`` where its metadata has a skeleton: per class id, ``(a, b)`` pairs of
    0-based keypoint indices to join."""

    image_size: tuple[int, int]
    class_names: Sequence[str]
    task: str = "object-detection"
    detections: Detections | None = None
    classification: Classification | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    keypoint_names: Mapping[int, Sequence[str]] | None = None
    keypoint_edges: Mapping[int, Sequence[tuple[int, int]]] | None = None

    def class_name(self, class_id: int) -> str:
        """The name of ``class_id`` (``class_<id>`` when the model has no name for it)."""
        names = self.class_names
        return str(names[class_id]) if 0 <= class_id < len(names) else f"class_{class_id}"

    def to_roboflow(self) -> dict[str, Any]:
        """Roboflow's JSON for this frame (see ``framepipe.predictions.roboflow``)."""
        from framepipe.predictions.roboflow import to_roboflow

        return to_roboflow(self)

    def to_supervision(self) -> sv.Detections:
        """``supervision.Detections`` with the same columns and ``data["class_name"]``."""
        from framepipe.predictions.supervision import to_supervision

        return to_supervision(self)

    def with_detections(self, detections: Detections) -> FramePrediction:
        """A copy with other detections (e.g. with tracker ids)."""
        return replace(self, detections=detections)
