"""Latency and throughput of a running pipeline, per source and per stage, as numbers and as
Prometheus text.

Stages of one frame: ``queue`` (captured until the pipeline took it from its source's buffer),
``batch`` (taken until its batch started inference: batch assembly and waiting for a worker),
``inference`` (preprocess, network and postprocess of its batch), ``sink`` (the ``on_prediction``
call) and ``end_to_end`` (captured until its sink call began: what a viewer waits).

Example:
    >>> from framepipe.pipeline.metrics import PipelineMetrics
    >>> metrics = PipelineMetrics()
    >>> metrics.observe(0, "inference", 0.012)
    >>> metrics.latency(0, "inference").quantiles()[0.5]
    0.012
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

STAGES = ("queue", "batch", "inference", "sink", "end_to_end")
QUANTILES = (0.5, 0.95, 0.99)


class LatencyWindow:
    """The last ``size`` samples of one latency (seconds), plus lifetime count and sum."""

    def __init__(self, size: int = 2048) -> None:
        self._samples: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()
        self.count = 0
        self.total = 0.0

    def add(self, seconds: float) -> None:
        with self._lock:
            self._samples.append(seconds)
            self.count += 1
            self.total += seconds

    def quantiles(self, quantiles: Iterable[float] = QUANTILES) -> dict[float, float]:
        """Quantiles of the recent samples (nearest rank); empty when there are none."""
        with self._lock:
            ordered = sorted(self._samples)
        if not ordered:
            return {}
        last = len(ordered) - 1
        return {q: ordered[min(last, max(0, round(q * last)))] for q in quantiles}


class RateMeter:
    """Events per second over the last ``window`` seconds."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self, count: int = 1, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.extend([now] * count)
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            span = max(now - self._times[0], 1e-6)
            return len(self._times) / span


@dataclass
class SourceCounters:
    """Frame counts of one source. ``dropped`` adds the source's drops, those of ``max_fps`` and
    the sink queues'."""

    captured: int = 0
    processed: int = 0
    dispatched: int = 0
    dropped_by_source: int = 0
    dropped_by_sink_queue: int = 0
    sink_errors: int = 0
    dropped_by_max_fps: int = 0

    @property
    def dropped(self) -> int:
        return self.dropped_by_source + self.dropped_by_max_fps + self.dropped_by_sink_queue


@dataclass
class MetricsSnapshot:
    """``pipeline.metrics()``: everything measured so far."""

    sources: dict[int, SourceCounters]
    latency: dict[int, dict[str, dict[float, float]]]
    throughput_fps: float
    inference_workers: int
    batch_sizes: dict[int, int]
    sources_up: dict[int, bool]
    sink_queue_size: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (latencies in milliseconds)."""
        return {
            "throughput_fps": round(self.throughput_fps, 3),
            "inference_workers": self.inference_workers,
            "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())},
            "sink_queue_size": self.sink_queue_size,
            "sources": {
                str(source_id): {
                    "up": self.sources_up.get(source_id, False),
                    "captured": counters.captured,
                    "processed": counters.processed,
                    "dispatched": counters.dispatched,
                    "dropped": counters.dropped,
                    "dropped_by_source": counters.dropped_by_source,
                    "dropped_by_sink_queue": counters.dropped_by_sink_queue,
                    "dropped_by_max_fps": counters.dropped_by_max_fps,
                    "sink_errors": counters.sink_errors,
                    "latency_ms": {
                        stage: {f"p{round(q * 100)}": round(v * 1000, 3) for q, v in values.items()}
                        for stage, values in self.latency.get(source_id, {}).items()
                    },
                }
                for source_id, counters in sorted(self.sources.items())
            },
            **self.extra,
        }


class PipelineMetrics:
    """Thread-safe store of per-source, per-stage latencies and counters."""

    def __init__(self) -> None:
        self._latency: dict[tuple[int, str], LatencyWindow] = {}
        self._counters: dict[int, SourceCounters] = {}
        self._batch_sizes: dict[int, int] = {}
        self._lock = threading.Lock()
        self.throughput = RateMeter()

    def latency(self, source_id: int, stage: str) -> LatencyWindow:
        key = (source_id, stage)
        with self._lock:
            window = self._latency.get(key)
            if window is None:
                window = self._latency[key] = LatencyWindow()
            return window

    def observe(self, source_id: int, stage: str, seconds: float) -> None:
        self.latency(source_id, stage).add(max(seconds, 0.0))

    def counters(self, source_id: int) -> SourceCounters:
        with self._lock:
            counters = self._counters.get(source_id)
            if counters is None:
                counters = self._counters[source_id] = SourceCounters()
            return counters

    def count_batch(self, size: int) -> None:
        with self._lock:
            self._batch_sizes[size] = self._batch_sizes.get(size, 0) + 1

    def batch_sizes(self) -> dict[int, int]:
        with self._lock:
            return dict(self._batch_sizes)

    def snapshot(
        self, sources_up: dict[int, bool], inference_workers: int, sink_queue_size: int = 0
    ) -> MetricsSnapshot:
        with self._lock:
            keys = list(self._latency)
            counters = {k: SourceCounters(**vars(v)) for k, v in self._counters.items()}
        latency: dict[int, dict[str, dict[float, float]]] = {}
        for source_id, stage in keys:
            values = self.latency(source_id, stage).quantiles()
            if values:
                latency.setdefault(source_id, {})[stage] = values
        for source_id in sources_up:
            counters.setdefault(source_id, SourceCounters())
        return MetricsSnapshot(
            sources=counters,
            latency=latency,
            throughput_fps=self.throughput.rate(),
            inference_workers=inference_workers,
            batch_sizes=self.batch_sizes(),
            sources_up=dict(sources_up),
            sink_queue_size=sink_queue_size,
        )

    def lifetime(self, source_id: int, stage: str) -> tuple[int, float]:
        """Lifetime ``(count, sum of seconds)`` of one latency."""
        window = self.latency(source_id, stage)
        return window.count, window.total


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(snapshot: MetricsSnapshot, metrics: PipelineMetrics) -> str:
    """The snapshot in Prometheus' text exposition format (version 0.0.4)."""
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[str, dict[str, object], float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for suffix, labels, value in samples:
            rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"{name}{suffix}{{{rendered}}} {value:.9g}" if rendered else f"{name}{suffix} {value:.9g}")

    counter_fields = (
        ("captured", "Frames decoded by the source."),
        ("processed", "Frames that went through inference."),
        ("dispatched", "Frames handed to the sink."),
        ("dropped", "Frames dropped (by the source's buffer or the sink queue)."),
        ("sink_errors", "Sink calls that raised."),
    )
    for name, help_text in counter_fields:
        family(
            f"framepipe_frames_{name}_total" if name != "sink_errors" else "framepipe_sink_errors_total",
            "counter",
            help_text,
            [("", {"source_id": sid}, float(getattr(c, name))) for sid, c in sorted(snapshot.sources.items())],
        )
    family(
        "framepipe_source_up",
        "gauge",
        "1 while the source is connected and producing frames.",
        [("", {"source_id": sid}, 1.0 if up else 0.0) for sid, up in sorted(snapshot.sources_up.items())],
    )
    samples: list[tuple[str, dict[str, object], float]] = []
    for source_id, stages in sorted(snapshot.latency.items()):
        for stage, values in stages.items():
            labels: dict[str, object] = {"source_id": source_id, "stage": stage}
            for q, v in values.items():
                samples.append(("", {**labels, "quantile": q}, v))
            count, total = metrics.lifetime(source_id, stage)
            samples.append(("_sum", labels, total))
            samples.append(("_count", labels, float(count)))
    family("framepipe_stage_latency_seconds", "summary", "Latency of each stage per frame.", samples)
    family(
        "framepipe_throughput_fps",
        "gauge",
        "Frames inferred per second (last 5 s).",
        [("", {}, snapshot.throughput_fps)],
    )
    family(
        "framepipe_inference_workers",
        "gauge",
        "Inference worker threads.",
        [("", {}, float(snapshot.inference_workers))],
    )
    family(
        "framepipe_batches_total",
        "counter",
        "Inference batches, by size.",
        [("", {"size": size}, float(n)) for size, n in sorted(snapshot.batch_sizes.items())],
    )
    family(
        "framepipe_sink_queue_size",
        "gauge",
        "Results waiting for the sink.",
        [("", {}, float(snapshot.sink_queue_size))],
    )
    return "\n".join(lines) + "\n"
