"""Watchdogs with Roboflow's interface: hooks the pipeline calls, and a report of what they saw.

``BasePipelineWatchDog`` keeps the last 512 status updates above DEBUG, per-source latencies
(averaged over the last 64 frames, in seconds, as Roboflow's ``LatencyMonitorReport``) and the
inference throughput. framepipe's own ``pipeline.metrics()`` goes further (percentiles per
stage, drop counters); the watchdog is here so that code written for Roboflow keeps working.

Example:
    >>> from framepipe.pipeline.watchdog import BasePipelineWatchDog
    >>> watchdog = BasePipelineWatchDog()
    >>> # pipeline = InferencePipeline.init(..., watchdog=watchdog); later watchdog.get_report()
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from framepipe.sources.entities import StatusUpdate, UpdateSeverity, VideoFrame


@dataclass(frozen=True)
class LatencyMonitorReport:
    """Average latencies of one source, in seconds: decoding (capture to inference start),
    inference, and end to end (capture to prediction ready)."""

    source_id: int | None = None
    frame_decoding_latency: float | None = None
    inference_latency: float | None = None
    e2e_latency: float | None = None


@dataclass(frozen=True)
class PipelineStateReport:
    """What ``get_report()`` returns."""

    video_source_status_updates: list[StatusUpdate]
    latency_reports: list[LatencyMonitorReport]
    inference_throughput: float
    sources_metadata: list[Any] = field(default_factory=list)


class PipelineWatchDog(ABC):
    """The hooks a pipeline calls; all may be called from several threads."""

    @abstractmethod
    def register_video_sources(self, video_sources: list[Any]) -> None: ...

    @abstractmethod
    def on_status_update(self, status_update: StatusUpdate) -> None: ...

    @abstractmethod
    def on_model_inference_started(self, frames: list[VideoFrame]) -> None: ...

    @abstractmethod
    def on_model_prediction_ready(self, frames: list[VideoFrame]) -> None: ...

    @abstractmethod
    def get_report(self) -> PipelineStateReport | None: ...


class NullPipelineWatchdog(PipelineWatchDog):
    """Does nothing; the default."""

    def register_video_sources(self, video_sources: list[Any]) -> None:
        pass

    def on_status_update(self, status_update: StatusUpdate) -> None:
        pass

    def on_model_inference_started(self, frames: list[VideoFrame]) -> None:
        pass

    def on_model_prediction_ready(self, frames: list[VideoFrame]) -> None:
        pass

    def get_report(self) -> PipelineStateReport | None:
        return None


class _LatencyMonitor:
    def __init__(self, source_id: int | None, size: int = 64) -> None:
        self.source_id = source_id
        self._started: dict[int, float] = {}
        self._decoding: deque[float] = deque(maxlen=size)
        self._inference: deque[float] = deque(maxlen=size)
        self._e2e: deque[float] = deque(maxlen=size)

    def started(self, frame: VideoFrame, now: datetime) -> None:
        self._started[frame.frame_id] = now.timestamp()
        self._decoding.append((now - frame.frame_timestamp).total_seconds())
        while len(self._started) > 256:  # frames dropped between the hooks
            self._started.pop(next(iter(self._started)))

    def ready(self, frame: VideoFrame, now: datetime) -> None:
        started = self._started.pop(frame.frame_id, None)
        if started is not None:
            self._inference.append(now.timestamp() - started)
        self._e2e.append((now - frame.frame_timestamp).total_seconds())

    def report(self) -> LatencyMonitorReport:
        def mean(values: deque[float]) -> float | None:
            return sum(values) / len(values) if values else None

        return LatencyMonitorReport(self.source_id, mean(self._decoding), mean(self._inference), mean(self._e2e))


class BasePipelineWatchDog(PipelineWatchDog):
    """Roboflow's default watchdog: status history, latency monitors and throughput."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: list[Any] = []
        self._updates: deque[StatusUpdate] = deque(maxlen=512)
        self._monitors: dict[int | None, _LatencyMonitor] = {}
        self._ready_times: deque[float] = deque(maxlen=30)

    def register_video_sources(self, video_sources: list[Any]) -> None:
        with self._lock:
            self._sources = list(video_sources)
            for source in video_sources:
                sid = getattr(source, "source_id", None)
                self._monitors.setdefault(sid, _LatencyMonitor(sid))

    def on_status_update(self, status_update: StatusUpdate) -> None:
        if status_update.severity.value <= UpdateSeverity.DEBUG.value:
            return
        with self._lock:
            self._updates.append(status_update)

    def _monitor(self, source_id: int | None) -> _LatencyMonitor:
        monitor = self._monitors.get(source_id)
        if monitor is None:
            monitor = self._monitors[source_id] = _LatencyMonitor(source_id)
        return monitor

    def on_model_inference_started(self, frames: list[VideoFrame]) -> None:
        now = datetime.now()
        with self._lock:
            for frame in frames:
                self._monitor(frame.source_id).started(frame, now)

    def on_model_prediction_ready(self, frames: list[VideoFrame]) -> None:
        now = datetime.now()
        with self._lock:
            for frame in frames:
                self._monitor(frame.source_id).ready(frame, now)
                self._ready_times.append(time.monotonic())

    def get_report(self) -> PipelineStateReport:
        with self._lock:
            times = list(self._ready_times)
            throughput = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
            metadata = [s.describe_source() for s in self._sources if hasattr(s, "describe_source")]
            return PipelineStateReport(
                video_source_status_updates=list(self._updates),
                latency_reports=[m.report() for m in self._monitors.values()],
                inference_throughput=throughput,
                sources_metadata=metadata,
            )
