"""From the inference results to the sinks: sink modes, per-sink queues and threads, the sink
error policy, end-to-end timing.

The dispatcher takes results in order from the engine's result queue, runs the trackers (in
frame order, per source) and hands each result to every sink. A ``MultiSink``'s children are
separate channels: with files they are called one after another on the dispatching thread
(every sink gets every frame, nothing is dropped), with a live source each gets its own thread
and its own bounded queue (count and bytes), so one slow sink never holds the others. A sink
that raises is logged once with its traceback, then counted, with a summary every few seconds
and one at the end.

Example:
    >>> from framepipe.pipeline.dispatch import SinkErrorLog
    >>> log = SinkErrorLog("on_prediction", interval=5.0)
    >>> for frame_id in (1, 2, 3):  # one traceback logged, then counted
    ...     log.failed(ValueError("disk full"), f"source 0 frame {frame_id}")
    >>> log.total
    3
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from framepipe.events import EventType
from framepipe.pipeline.metrics import PipelineMetrics
from framepipe.pipeline.sink_queue import SinkQueue
from framepipe.predictions import to_payload
from framepipe.sinks.base import Sink
from framepipe.sinks.multi import MultiSink
from framepipe.sources.entities import UpdateSeverity, VideoFrame

__all__ = ["Dispatcher", "SinkErrorLog"]

logger = logging.getLogger("framepipe.pipeline")

POLL = 0.05
END = object()


class SinkErrorLog:
    """Logs a sink's first failure with its traceback, then a count every ``interval`` seconds,
    and the total at ``close()``."""

    def __init__(self, name: str, interval: float = 5.0) -> None:
        self.name = name
        self.interval = interval
        self.total = 0
        self._since = 0
        self._last_report = time.monotonic()
        self._last: BaseException | None = None
        self._lock = threading.Lock()

    def failed(self, error: BaseException, where: str, stopping: bool = False) -> None:
        with self._lock:
            self.total += 1
            self._last = error
            if self.total == 1:
                logger.error(
                    "%s raised on %s; %s (later failures are counted and summed up every %g s)",
                    self.name,
                    where,
                    "stopping" if stopping else "going on",
                    self.interval,
                    exc_info=error,
                )
                self._last_report = time.monotonic()
                return
            self._since += 1
            if time.monotonic() - self._last_report >= self.interval:
                logger.error(
                    "%s raised %d more times in the last %.0f s (last on %s: %s: %s)",
                    self.name,
                    self._since,
                    time.monotonic() - self._last_report,
                    where,
                    type(error).__name__,
                    error,
                )
                self._since, self._last_report = 0, time.monotonic()

    def close(self) -> None:
        with self._lock:
            if self.total > 1 and self._last is not None:
                logger.error(
                    "%s raised %d times in all (last: %s: %s)",
                    self.name,
                    self.total,
                    type(self._last).__name__,
                    self._last,
                )


class _Pending:
    """A result handed to several sink threads: delivered once the last one is done with it."""

    __slots__ = ("frames", "lock", "remaining", "seconds")

    def __init__(self, frames: list[VideoFrame], count: int) -> None:
        self.frames, self.remaining, self.seconds, self.lock = frames, count, 0.0, threading.Lock()


class _Channel:
    """One sink: called on the dispatching thread, or (``queue`` given) on its own thread."""

    def __init__(
        self, dispatcher: Dispatcher, sink: Sink, name: str, queue: SinkQueue | None, owner: MultiSink | None = None
    ) -> None:
        self.dispatcher, self.sink, self.name, self.queue, self.owner = dispatcher, sink, name, queue, owner
        self.errors = SinkErrorLog(name, dispatcher.error_log_interval)
        self.thread: threading.Thread | None = None

    def call(self, predictions: Any, frames: Any, delivered: list[VideoFrame]) -> float:
        """Call the sink; returns the seconds it took."""
        called = datetime.now()
        metrics = self.dispatcher.metrics
        for frame in delivered:
            metrics.observe(frame.source_id or 0, "end_to_end", (called - frame.frame_timestamp).total_seconds())
        started = time.monotonic()
        try:
            self.sink(predictions, frames)
        except Exception as error:
            self.dispatcher.sink_failed(self, error, delivered)
        return time.monotonic() - started

    def start(self, index: int) -> None:
        if self.queue is not None:
            self.thread = threading.Thread(target=self._loop, name=f"framepipe-sink-{index}", daemon=True)
            self.thread.start()

    def _loop(self) -> None:
        assert self.queue is not None
        stop = self.dispatcher.stop
        while True:
            try:
                item = self.queue.get(timeout=POLL)
            except TimeoutError:
                if stop.is_set():
                    break
                continue
            if item is END:
                break
            if stop.is_set():
                continue
            predictions, frames, pending = item
            seconds = self.call(predictions, frames, pending.frames)
            self.dispatcher.done(pending, seconds)


class Dispatcher:
    """Takes results from ``results`` and calls ``sink`` with them (see the module docstring)."""

    def __init__(
        self,
        sink: Sink | None,
        *,
        sources: int,
        batch_mode: bool,
        threaded: bool,
        queue_factory: Callable[[], SinkQueue],
        metrics: PipelineMetrics,
        emit: Callable[..., None],
        stop: threading.Event,
        on_fatal: Callable[[BaseException], None] | None,
        trackers: Any = None,
        error_log_interval: float = 5.0,
    ) -> None:
        self.metrics, self.emit, self.stop, self.on_fatal = metrics, emit, stop, on_fatal
        self.sources, self.batch_mode, self.trackers = sources, batch_mode, trackers
        self.error_log_interval = error_log_interval
        self.frames_dispatched = 0
        self.errors = 0
        self._lock = threading.Lock()
        self.channels: list[_Channel] = []
        if isinstance(sink, MultiSink):
            for child, name in zip(sink.children, sink.names, strict=True):
                queue = queue_factory() if threaded else None
                self.channels.append(_Channel(self, child, f"sink {name}", queue, owner=sink))
        elif sink is not None:
            self.channels.append(_Channel(self, sink, "on_prediction", None))

    @property
    def queues(self) -> list[SinkQueue]:
        return [c.queue for c in self.channels if c.queue is not None]

    # -- accounting --------------------------------------------------------------------------------
    def delivered(self, frames: list[VideoFrame], sink_seconds: float) -> None:
        for frame in frames:
            source_id = frame.source_id or 0
            self.metrics.observe(source_id, "sink", sink_seconds)
            self.metrics.counters(source_id).dispatched += 1
        with self._lock:
            self.frames_dispatched += len(frames)

    def done(self, pending: _Pending, seconds: float) -> None:
        with pending.lock:
            pending.remaining -= 1
            pending.seconds = max(pending.seconds, seconds)
            last = pending.remaining == 0
        if last:
            self.delivered(pending.frames, pending.seconds)

    def sink_failed(self, channel: _Channel, error: BaseException, delivered: list[VideoFrame]) -> None:
        where = ", ".join(f"source {f.source_id} frame {f.frame_id}" for f in delivered)
        if channel.owner is not None:  # a MultiSink keeps its children's failures to itself
            with self._lock:
                channel.owner.errors += 1
            channel.errors.failed(error, where)
            return
        with self._lock:
            self.errors += 1
        for frame in delivered:
            self.metrics.counters(frame.source_id or 0).sink_errors += 1
        channel.errors.failed(error, where, stopping=self.on_fatal is not None)
        self.emit(
            EventType.INFERENCE_RESULTS_DISPATCHING_ERROR,
            UpdateSeverity.ERROR,
            error_type=type(error).__name__,
            error_message=str(error),
            error_context="inference_results_dispatching",
            frames=[(f.source_id, f.frame_id) for f in delivered],
        )
        if self.on_fatal is not None:
            self.on_fatal(error)

    # -- the loop ----------------------------------------------------------------------------------
    def run(self, results: SinkQueue, producers_alive: Callable[[], bool]) -> None:
        """Dispatch until the end marker (or a stop once the producers are gone)."""
        for index, channel in enumerate(self.channels):
            channel.start(index)
        try:
            while True:
                try:
                    item = results.get(timeout=POLL)
                except TimeoutError:
                    if self.stop.is_set() and not producers_alive():
                        break
                    continue
                if item is END:
                    break
                if self.stop.is_set():
                    continue  # terminated: results still queued are not delivered
                self._dispatch(*item)
        finally:
            self._finish()

    def _dispatch(self, predictions: list[Any], frames: list[VideoFrame]) -> None:
        if self.trackers is not None:  # in frame order, per source
            predictions = [self.trackers.apply(p, f) for p, f in zip(predictions, frames, strict=True)]
        if not self.channels:
            self.delivered(frames, 0.0)
            return
        predictions = [to_payload(p) for p in predictions]  # Roboflow's JSON, made once per frame
        if self.batch_mode:
            by_source: list[Any] = [None] * self.sources
            frame_by_source: list[VideoFrame | None] = [None] * self.sources
            for prediction, frame in zip(predictions, frames, strict=True):
                by_source[frame.source_id or 0] = prediction
                frame_by_source[frame.source_id or 0] = frame
            self._fan_out(by_source, frame_by_source, frames)
        else:
            for prediction, frame in zip(predictions, frames, strict=True):
                self._fan_out(prediction, frame, [frame])

    def _fan_out(self, predictions: Any, frames: Any, delivered: list[VideoFrame]) -> None:
        threaded = [c for c in self.channels if c.queue is not None]
        if not threaded:
            seconds = sum(c.call(predictions, frames, delivered) for c in self.channels)
            self.delivered(delivered, seconds)
            return
        pending = _Pending(delivered, len(threaded))
        nbytes = sum(f.image.nbytes for f in delivered)
        ids = [f.source_id or 0 for f in delivered]
        for channel in threaded:
            assert channel.queue is not None
            while not self.stop.is_set():
                if channel.queue.put((predictions, frames, pending), ids, timeout=POLL, nbytes=nbytes):
                    break

    def clear(self) -> None:
        """Drop what waits in the sink queues (on terminate)."""
        for queue in self.queues:
            queue.clear()
            queue.close()

    def _finish(self) -> None:
        for channel in self.channels:
            if channel.queue is not None:
                channel.queue.put_final(END)
        for channel in self.channels:
            if channel.thread is not None:  # after a stop, a sink stuck in a call is not waited for long
                channel.thread.join(5.0 if self.stop.is_set() else None)
            channel.errors.close()
