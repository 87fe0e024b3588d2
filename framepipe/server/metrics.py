"""The inference server's Prometheus metrics (text exposition format 0.0.4), without a client library:
requests by route, model and status, a latency histogram per route and model, and from the models
themselves their executors' batch sizes, frames, queue depth and the number of loaded models.

Example:
    >>> from framepipe.server.metrics import ServerMetrics
    >>> metrics = ServerMetrics()
    >>> metrics.observe("/infer/object_detection", "framepipe-shapes/1", 200, 0.012)
    >>> text = metrics.render([])
    >>> 'requests_total{route="/infer/object_detection",model="framepipe-shapes/1",status="200"} 1' in text
    True
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Mapping, Sequence
from typing import Any

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Mapping[str, object]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}" if labels else ""


class ServerMetrics:
    """Request counters and latency histograms, safe to update from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = {}
        self._latency: dict[tuple[str, str], list[float]] = {}  # bucket counts + [sum, count]
        self.in_flight = 0

    def observe(self, route: str, model: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        with self._lock:
            key = (route, model, status)
            self._requests[key] = self._requests.get(key, 0) + 1
            row = self._latency.setdefault((route, model), [0.0] * (len(BUCKETS) + 2))
            index = bisect.bisect_left(BUCKETS, seconds)
            if index < len(BUCKETS):
                row[index] += 1
            row[-2] += seconds
            row[-1] += 1

    def requests(self, status: int | None = None) -> int:
        """How many requests were answered (with ``status``, when given)."""
        with self._lock:
            return sum(n for (_, _, s), n in self._requests.items() if status is None or s == status)

    def render(self, models: Sequence[tuple[str, Any]]) -> str:
        """The metrics, with the executors of ``models`` (``(model_id, model)`` pairs)."""
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")

        with self._lock:
            requests = sorted(self._requests.items())
            latency = sorted((k, list(v)) for k, v in self._latency.items())
            in_flight = self.in_flight
        family("framepipe_server_requests_total", "counter", "Requests answered, by route, model and status.")
        for (route, model, status), count in requests:
            rendered = _labels({"route": route, "model": model, "status": status})
            lines.append(f"framepipe_server_requests_total{rendered} {count}")
        family("framepipe_server_request_duration_seconds", "histogram", "Request latency, by route and model.")
        for (route, model), row in latency:
            base = {"route": route, "model": model}
            cumulative = 0.0
            name = "framepipe_server_request_duration_seconds"
            for bound, hits in zip(BUCKETS, row, strict=False):
                cumulative += hits
                lines.append(f"{name}_bucket{_labels({**base, 'le': bound})} {cumulative:g}")
            lines.append(f"{name}_bucket{_labels({**base, 'le': '+Inf'})} {row[-1]:g}")
            lines.append(f"{name}_sum{_labels(base)} {row[-2]:.9g}")
            lines.append(f"{name}_count{_labels(base)} {row[-1]:g}")
        family("framepipe_server_requests_in_flight", "gauge", "Requests being answered now.")
        lines.append(f"framepipe_server_requests_in_flight {in_flight}")
        family("framepipe_server_loaded_models", "gauge", "Models loaded in this process.")
        lines.append(f"framepipe_server_loaded_models {len(models)}")
        self._executors(models, lines, family)
        return "\n".join(lines) + "\n"

    @staticmethod
    def _executors(models: Sequence[tuple[str, Any]], lines: list[str], family: Any) -> None:
        rows = []
        for model_id, model in models:
            executor = getattr(model, "_executor", None)  # only executors already made: none is made here
            if executor is not None:
                rows.append((model_id, executor))
        family("framepipe_model_queue_depth", "gauge", "Frames waiting in the model's batching executor.")
        for model_id, executor in rows:
            lines.append(f"framepipe_model_queue_depth{_labels({'model': model_id})} {executor.queue_depth}")
        family("framepipe_model_runs_total", "counter", "Session runs (batches) of the model.")
        for model_id, executor in rows:
            lines.append(f"framepipe_model_runs_total{_labels({'model': model_id})} {executor.stats.runs}")
        family("framepipe_model_frames_total", "counter", "Frames the model has run.")
        for model_id, executor in rows:
            lines.append(f"framepipe_model_frames_total{_labels({'model': model_id})} {executor.stats.frames}")
        family("framepipe_model_batch_size", "histogram", "Frames per session run (batches formed).")
        for model_id, executor in rows:
            sizes = dict(executor.stats.batch_sizes)
            total = sum(sizes.values())
            for bound in BATCH_BUCKETS:
                below = sum(n for size, n in sizes.items() if size <= bound)
                lines.append(f"framepipe_model_batch_size_bucket{_labels({'model': model_id, 'le': bound})} {below}")
            lines.append(f"framepipe_model_batch_size_bucket{_labels({'model': model_id, 'le': '+Inf'})} {total}")
            lines.append(
                f"framepipe_model_batch_size_sum{_labels({'model': model_id})} {sum(s * n for s, n in sizes.items())}"
            )
            lines.append(f"framepipe_model_batch_size_count{_labels({'model': model_id})} {total}")
