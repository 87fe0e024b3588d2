"""Gathering frames from several sources into inference batches.

A batch holds at most one frame per source, in source order, up to ``max_batch_size`` frames. It
is closed as soon as every source that was producing when it began has given a frame, or
``window`` seconds after its first frame arrived, whichever is first: a slow, stalled or
reconnecting camera never holds the others back by more than the window.

Sources say when they have a frame (``add_frame_listener``): their ids go into a readiness
queue, and the collector reads only the sources named there, so a frame costs the same whether
there are 1 or 64 sources. A source without listeners is looked at every few milliseconds.

Example:
    >>> from framepipe.pipeline.collector import BatchCollector
    >>> collector = BatchCollector(sources, window=0.02)  # doctest: +SKIP
    >>> batch = collector.next_batch()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Protocol

from framepipe.sources.entities import VideoFrame

__all__ = ["BatchCollector", "CollectedFrame", "FrameSource"]

logger = logging.getLogger("framepipe.pipeline")

_IDLE_WAIT = 0.05  # seconds between looks at the sources' states when nothing arrives
_POLL_WAIT = 0.005  # seconds between looks at sources that cannot say that a frame arrived
_WAKE = -1


class FrameSource(Protocol):
    """What the collector needs of a source (``add_frame_listener`` is optional)."""

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
    reconnects or is paused). ``on_end(source)`` is called once per source that ends.
    """

    def __init__(
        self,
        sources: Sequence[FrameSource],
        window: float | None,
        max_batch_size: int | None = None,
        stop: threading.Event | None = None,
        producing: Callable[[Any], bool] | None = None,
        on_end: Callable[[Any], None] | None = None,
    ) -> None:
        self._sources = {s.source_id: s for s in sources}
        self.window = window
        self.max_batch_size = max(int(max_batch_size or len(self._sources)), 1)
        self._stop = stop or threading.Event()
        self._producing = producing or (lambda source: True)
        self._on_end = on_end
        self.ended: set[int] = set()
        self._ready: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._deferred: dict[int, None] = {}  # ready, but the batch already had a frame of theirs
        self._polled = [s for s in sources if not hasattr(s, "add_frame_listener")]
        for source in sources:
            if hasattr(source, "add_frame_listener"):
                source.add_frame_listener(partial(self._ready.put, source.source_id))
            self._ready.put(source.source_id)  # whatever is buffered already

    def wake(self) -> None:
        """Make a waiting ``next_batch`` look at its stop event now."""
        self._ready.put(_WAKE)

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

    def _expected(self) -> set[int]:
        return {i for i, s in self._sources.items() if i not in self.ended and self._producing(s)}

    def _next_ready(self, timeout: float) -> int | None:
        try:
            return self._ready.get(timeout=timeout)
        except queue.Empty:
            return None

    def _offer(self, source_id: int, batch: dict[int, CollectedFrame], missing: set[int]) -> None:
        """Take the frame that ``source_id`` announced into ``batch``, or keep the notice for later."""
        if source_id == _WAKE or source_id in self.ended:
            return
        if source_id in batch:
            self._deferred[source_id] = None
            return
        frame = self._take(self._sources[source_id])
        if frame is not None:
            queued = (datetime.now() - frame.frame_timestamp).total_seconds()
            batch[source_id] = CollectedFrame(frame, time.monotonic(), queued)
        if frame is not None or source_id in self.ended:  # else a stale notice: nothing buffered now
            missing.discard(source_id)

    def _drain(self, batch: dict[int, CollectedFrame], missing: set[int]) -> None:
        """Take what was announced already (a source that just ended may still hold a frame)."""
        while len(batch) < self.max_batch_size:
            try:
                source_id = self._ready.get_nowait()
            except queue.Empty:
                return
            self._offer(source_id, batch, missing)

    def next_batch(self) -> list[CollectedFrame] | None:
        """The next batch (frames in source order); ``None`` when all sources ended or on stop."""
        batch: dict[int, CollectedFrame] = {}
        first_at: float | None = None
        missing = self._expected()
        for source_id in self._deferred:  # ready during the last batch: looked at once in this one
            self._ready.put(source_id)
        self._deferred.clear()
        while not self._stop.is_set() and len(self.ended) < len(self._sources):
            timeout = _POLL_WAIT if self._polled else _IDLE_WAIT
            if first_at is not None and self.window is not None:
                timeout = min(max(self.window - (time.monotonic() - first_at), 0.0), timeout)
            ready = self._next_ready(timeout)
            if ready is None:  # nothing arrived in time: look at the sources' states
                if first_at is not None and self.window is not None and time.monotonic() - first_at >= self.window:
                    break
                missing = {i for i in missing if i not in self.ended and self._producing(self._sources[i])}
                if batch and not missing:
                    self._drain(batch, missing)
                    break
                waiting = self._polled if batch else list(self._sources.values())
                for source in waiting:  # catches ends and frames that no listener announced
                    if source.source_id not in batch and source.source_id not in self.ended:
                        self._ready.put(source.source_id)
                continue
            self._offer(ready, batch, missing)
            if batch and first_at is None:
                first_at = time.monotonic()
            if batch and not missing:
                self._drain(batch, missing)
            if len(batch) >= self.max_batch_size or (batch and not missing):
                break
            if first_at is not None and self.window is not None and time.monotonic() - first_at >= self.window:
                break
        if not batch:
            return None
        return [batch[k] for k in sorted(batch)]
