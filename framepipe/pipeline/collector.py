"""Gathering frames from several sources into inference batches.

A batch holds at most one frame per source, in source order, up to ``max_batch_size`` frames. It
is closed as soon as every source that is producing has given a frame, or ``window`` seconds
after its first frame arrived, whichever is first: a slow, stalled or reconnecting camera never
holds the others back by more than the window.

Example:
    >>> from framepipe.pipeline.collector import BatchCollector
    >>> collector = BatchCollector(sources, window=0.02)  # doctest: +SKIP
    >>> batch = collector.next_batch()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from framepipe.sources.entities import VideoFrame

logger = logging.getLogger("framepipe.pipeline")

_IDLE_WAIT = 0.005  # seconds between looks when no source can say that a frame arrived


class FrameSource(Protocol):
    """What the collector needs of a source."""

    source_id: int
    error: BaseException | None

    def read_frame(self, timeout: float | None = None) -> VideoFrame | None: ...


@dataclass(frozen=True)
class CollectedFrame:
    """A frame, when the pipeline took it from its source (``time.monotonic()``) and how long it
    had waited in the source's buffer since capture (seconds)."""

    frame: VideoFrame
    taken_at: float
    queued: float


class BatchCollector:
    """Pulls frames from ``sources`` and returns batches; ``None`` once every source has ended.

    ``producing(source)`` tells whether a source is expected to deliver soon (``False`` while it
    reconnects or is paused); ``frame_event``, when sources set it on each new frame, replaces
    polling. ``on_end(source)`` is called once per source that ends.
    """

    def __init__(
        self,
        sources: Sequence[FrameSource],
        window: float | None,
        max_batch_size: int | None = None,
        stop: threading.Event | None = None,
        producing: Callable[[Any], bool] | None = None,
        frame_event: threading.Event | None = None,
        on_end: Callable[[Any], None] | None = None,
    ) -> None:
        self._sources = list(sources)
        self.window = window
        self.max_batch_size = max(int(max_batch_size or len(self._sources)), 1)
        self._stop = stop or threading.Event()
        self._producing = producing or (lambda source: True)
        self._frame_event = frame_event
        self._on_end = on_end
        self.ended: set[int] = set()

    def _take(self, source: FrameSource) -> VideoFrame | None:
        try:
            frame = source.read_frame(timeout=0)
        except TimeoutError:
            return None
        if frame is None and source.source_id not in self.ended:
            self.ended.add(source.source_id)
            if self._on_end is not None:
                self._on_end(source)
        return frame

    def next_batch(self) -> list[CollectedFrame] | None:
        """The next batch (frames in source order); ``None`` when all sources ended or on stop."""
        batch: dict[int, CollectedFrame] = {}
        first_at: float | None = None
        while not self._stop.is_set():
            if self._frame_event is not None:
                self._frame_event.clear()
            live = [s for s in self._sources if s.source_id not in self.ended]
            if not live:
                break
            for source in live:
                if source.source_id in batch or len(batch) >= self.max_batch_size:
                    continue
                frame = self._take(source)
                if frame is not None:
                    now = time.monotonic()
                    queued = (datetime.now() - frame.frame_timestamp).total_seconds()
                    batch[source.source_id] = CollectedFrame(frame, now, queued)
                    first_at = first_at if first_at is not None else now
            if len(batch) >= self.max_batch_size:
                break
            waiting_for = [
                s for s in live if s.source_id not in batch and s.source_id not in self.ended and self._producing(s)
            ]
            if batch and not waiting_for:
                break
            if first_at is not None and self.window is not None and time.monotonic() - first_at >= self.window:
                break
            remaining = _IDLE_WAIT
            if first_at is not None and self.window is not None:
                remaining = min(max(self.window - (time.monotonic() - first_at), 0.0), 0.05)
            if self._frame_event is not None:
                self._frame_event.wait(remaining if first_at is not None else 0.05)
            else:
                time.sleep(min(remaining, _IDLE_WAIT) if remaining > 0 else 0)
        if not batch:
            return None
        return [batch[k] for k in sorted(batch)]
