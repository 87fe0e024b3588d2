"""The inference stage: batches from the collector, inference workers in parallel, results back
in order into the result queue.

The collector thread takes frames only when a worker is free (so no frame ages in a queue),
paces batches at ``max_fps`` (live sources drop, and count, the batches it has no time for) and
hands them to the workers; each worker runs ``on_video_frame`` on a batch; a reorder buffer puts
results back in batch order, whichever worker finished first, before they enter the result
queue (bounded by count and bytes, with a policy per source).

Example:
    >>> from framepipe.pipeline.inference_stage import InferenceStage
    >>> stage = InferenceStage(collector, on_video_frame, results, ...)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from framepipe.events import EventType
from framepipe.pipeline.collector import BatchCollector, CollectedFrame
from framepipe.pipeline.dispatch import END, POLL
from framepipe.pipeline.handlers import InferenceHandler
from framepipe.pipeline.metrics import PipelineMetrics
from framepipe.pipeline.reorder import ReorderBuffer
from framepipe.pipeline.sink_queue import SinkQueue
from framepipe.sources.entities import UpdateSeverity, VideoFrame

__all__ = ["InferenceStage"]

logger = logging.getLogger("framepipe.pipeline")


class InferenceStage:
    """The collector thread's and the workers' loops, and what they share."""

    def __init__(
        self,
        collector: BatchCollector,
        on_video_frame: InferenceHandler,
        results: SinkQueue,
        *,
        workers: int,
        live_ids: set[int],
        max_fps: float | None,
        metrics: PipelineMetrics,
        emit: Callable[..., None],
        fail: Callable[[BaseException, str], None],
        stop: threading.Event,
        watchdog: Any = None,
    ) -> None:
        self.collector, self.on_video_frame, self.results = collector, on_video_frame, results
        self.workers_count, self.live_ids, self.max_fps = workers, live_ids, max_fps
        self.metrics, self.emit, self.fail, self.stop, self.watchdog = metrics, emit, fail, stop, watchdog
        self._batches: queue.Queue[Any] = queue.Queue(maxsize=workers)
        self._idle_workers = threading.Semaphore(workers)
        self._reorder: ReorderBuffer[Any] = ReorderBuffer()
        self._reorder_lock = threading.Lock()
        self._workers_left = workers
        self.frames_inferred = 0

    def threads(self) -> list[threading.Thread]:
        """The collector's thread and one per worker (not started)."""
        threads = [threading.Thread(target=self.collect_loop, name="framepipe-collector")]
        return threads + [
            threading.Thread(target=self.worker_loop, name=f"framepipe-inference-{i}")
            for i in range(self.workers_count)
        ]

    def collect_loop(self) -> None:
        max_fps = self.max_fps
        interval = 1.0 / max_fps if max_fps else 0.0
        next_due = time.monotonic()
        sequence = 0
        try:
            while not self.stop.is_set():
                # take frames only when a worker is free, so that no frame ages in a queue
                if not self._idle_workers.acquire(timeout=POLL):
                    continue
                batch = self.collector.next_batch()
                if batch is None:
                    self._idle_workers.release()
                    break
                if interval:
                    delay = next_due - time.monotonic()
                    if delay > 0 and not any(c.frame.source_id in self.live_ids for c in batch):
                        self.stop.wait(delay)
                    elif delay > 0:  # live sources: drop this batch (and count it) rather than fall behind
                        for collected in batch:
                            self.metrics.counters(collected.frame.source_id or 0).dropped_by_max_fps += 1
                        self._idle_workers.release()
                        continue
                    next_due = max(next_due + interval, time.monotonic())
                if self._put_batch((sequence, batch)):
                    sequence += 1
                else:
                    self._idle_workers.release()
        except Exception as error:
            self.fail(error, "collector")
        finally:
            for _ in range(self.workers_count):
                self._put_batch(END, force=True)

    def _put_batch(self, item: Any, force: bool = False) -> bool:
        while True:
            if self.stop.is_set() and not force:
                return False
            try:
                self._batches.put(item, timeout=POLL)
                return True
            except queue.Full:
                if self.stop.is_set():
                    self.drain_batches()

    def drain_batches(self) -> None:
        while True:
            try:
                item = self._batches.get_nowait()
            except queue.Empty:
                return
            if item is END:  # keep end markers for the workers
                self._batches.put_nowait(item)
                return

    def worker_loop(self) -> None:
        try:
            while True:
                item = self._batches.get()
                if item is END:
                    break
                if self.stop.is_set():
                    continue
                sequence, batch = item
                try:
                    self._infer(sequence, batch)
                finally:
                    self._idle_workers.release()
        finally:
            with self._reorder_lock:
                self._workers_left -= 1
                last = self._workers_left == 0
            if last:
                self.results.put_final(END)
                self.emit(EventType.INFERENCE_THREAD_FINISHED, UpdateSeverity.INFO)

    def _infer(self, sequence: int, batch: list[CollectedFrame]) -> None:
        frames = [c.frame for c in batch]
        started = time.monotonic()
        if self.watchdog is not None and hasattr(self.watchdog, "on_model_inference_started"):
            self.watchdog.on_model_inference_started(frames)
        try:
            predictions = list(self.on_video_frame(frames))
            if len(predictions) != len(frames):
                raise ValueError(f"on_video_frame returned {len(predictions)} predictions for {len(frames)} frames")
        except Exception as error:
            self.fail(error, "inference_thread")
            return
        finished = time.monotonic()
        if self.watchdog is not None and hasattr(self.watchdog, "on_model_prediction_ready"):
            self.watchdog.on_model_prediction_ready(frames)
        store = self.metrics
        store.count_batch(len(frames))
        store.throughput.tick(len(frames), finished)
        for collected in batch:
            source_id = collected.frame.source_id or 0
            store.observe(source_id, "queue", collected.queued)
            store.observe(source_id, "batch", started - collected.taken_at)
            store.observe(source_id, "inference", finished - started)
        self.emit(
            EventType.INFERENCE_COMPLETED,
            UpdateSeverity.DEBUG,
            frames_ids=[f.frame_id for f in frames],
            sources_id=[f.source_id for f in frames],
        )
        with self._reorder_lock:  # results leave in batch order, whichever worker finished first
            self.frames_inferred += len(frames)
            for frame in frames:
                store.counters(frame.source_id or 0).processed += 1
            for due in self._reorder.push(sequence, (predictions, frames)):
                self._enqueue_result(due)

    def _enqueue_result(self, result: tuple[list[Any], list[VideoFrame]]) -> None:
        source_ids = [f.source_id or 0 for f in result[1]]
        nbytes = sum(f.image.nbytes for f in result[1])
        while not self.stop.is_set():
            if self.results.put(result, source_ids, timeout=POLL, nbytes=nbytes):
                return
