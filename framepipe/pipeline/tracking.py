"""Per-source object tracking: one tracker per source, fed in frame order, reset when its source
reconnects.

Any tracker with ``update(supervision.Detections) -> supervision.Detections`` and ``reset()``
works, such as ``ByteTrackTracker`` or ``SORTTracker`` from the ``trackers`` package
(``pip install 'framepipe[tracking]'``). Typed predictions are tracked as they are (no JSON round
trip) and come back with ``tracker_id`` on their detections (``-1`` where the tracker has not
confirmed a detection yet); a custom handler's Roboflow dicts get ``"tracker_id"`` on tracked
items.

Example:
    >>> from trackers import ByteTrackTracker  # doctest: +SKIP
    >>> from framepipe import InferencePipeline
    >>> pipeline = InferencePipeline.init(  # doctest: +SKIP
    ...     "clip.mp4", "framepipe-shapes/1", on_prediction, tracker=lambda: ByteTrackTracker(frame_rate=30)
    ... )
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from framepipe.predictions import FramePrediction
from framepipe.sources.entities import VideoFrame


class Tracker(Protocol):
    """What a tracker offers (the ``trackers`` package's interface)."""

    def update(self, detections: Any) -> Any: ...

    def reset(self) -> None: ...


TrackerFactory = Callable[[], Tracker]


class SourceTrackers:
    """One tracker per source id, made by ``factory()`` the first time the source is seen."""

    def __init__(self, factory: TrackerFactory) -> None:
        self._factory = factory
        self._trackers: dict[int, Tracker] = {}
        self._pending_resets: dict[int, int] = {}  # source id -> first frame id of the new tracks
        self._lock = threading.Lock()

    def tracker(self, source_id: int, frame_id: int = 0) -> Tracker:
        with self._lock:
            due = self._pending_resets.get(source_id)
            reset_now = due is not None and frame_id >= due
            if reset_now:
                del self._pending_resets[source_id]
            tracker = self._trackers.get(source_id)
            if tracker is None:
                tracker = self._trackers[source_id] = self._factory()
            elif reset_now:
                tracker.reset()
            return tracker

    def reset(self, source_id: int | None = None, from_frame_id: int = 0) -> None:
        """Forget the tracks of ``source_id`` (every source when ``None``) at its first frame with
        an id of at least ``from_frame_id`` (frames already on their way keep their tracks); safe
        to call from any thread."""
        with self._lock:
            for sid in self._trackers if source_id is None else [source_id]:
                self._pending_resets[sid] = from_frame_id

    def _track(self, detections: Any, count: int, frame: VideoFrame) -> np.ndarray:
        """Tracker ids (``-1``: none) of ``count`` detections given as ``sv.Detections``."""
        detections.data["framepipe_index"] = np.arange(count)
        tracked = self.tracker(frame.source_id or 0, frame.frame_id).update(detections)
        ids = np.full(count, -1, np.int64)
        if tracked.tracker_id is not None and len(tracked):
            for index, tracker_id in zip(tracked.data["framepipe_index"], tracked.tracker_id, strict=True):
                if tracker_id >= 0:
                    ids[int(index)] = int(tracker_id)
        return ids

    def apply(self, prediction: Any, frame: VideoFrame | None) -> Any:
        """The prediction with tracker ids on the detections the source's tracker follows.
        Call it once per frame, in order, for each source."""
        if prediction is None or frame is None:
            return prediction
        if isinstance(prediction, FramePrediction):
            found = prediction.detections
            if found is None:  # classification: nothing to track
                return prediction
            ids = self._track(prediction.to_supervision(), len(found), frame)
            return prediction.with_detections(found.with_tracker_ids(ids))
        if not isinstance(prediction, dict) or "predictions" not in prediction:
            return prediction
        import supervision as sv

        items = list(prediction["predictions"])
        detections = sv.Detections.from_inference(prediction) if items else sv.Detections.empty()
        ids = self._track(detections, len(items), frame)
        updated = [{**item, "tracker_id": int(ids[i])} if ids[i] >= 0 else item for i, item in enumerate(items)]
        return {**prediction, "predictions": updated}
