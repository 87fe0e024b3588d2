"""``JsonlSink``: one JSON object per frame in a JSON-lines file.

Each line is ``{"source_id", "frame_id", "frame_timestamp", "presentation_time", "predictions"}``
with ``predictions`` the Roboflow dict as the model returned it. Lines are collected and written
whole, at most every ``flush_interval`` seconds, with one ``write`` call per flush; ``release()``
writes the rest and fsyncs, so the file never ends in half a line because of framepipe.

Example:
    >>> from framepipe.sinks import JsonlSink
    >>> sink = JsonlSink("predictions.jsonl")  # doctest: +SKIP
    >>> # InferencePipeline.init(..., on_prediction=sink.on_prediction); later sink.release()
"""

from __future__ import annotations

import json
import os
import threading
import time
from types import TracebackType
from typing import Any

from framepipe.sinks.base import pairs
from framepipe.sources.entities import VideoFrame


def frame_record(prediction: dict[str, Any] | None, frame: VideoFrame) -> dict[str, Any]:
    """The JSON object written for one frame."""
    return {
        "source_id": frame.source_id,
        "frame_id": frame.frame_id,
        "frame_timestamp": frame.frame_timestamp.isoformat(),
        "presentation_time": frame.presentation_time,
        "predictions": prediction,
    }


class JsonlSink:
    """Appends one line per frame to ``path`` (created or truncated on open)."""

    def __init__(self, path: str | os.PathLike[str], flush_interval: float = 1.0) -> None:
        self.path = os.fspath(path)
        self.flush_interval = flush_interval
        self.lines_written = 0
        self._pending: list[str] = []
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)

    def on_prediction(
        self,
        predictions: dict[str, Any] | list[dict[str, Any] | None] | None,
        video_frame: VideoFrame | list[VideoFrame | None] | None,
    ) -> None:
        """Record one frame, or each non-empty entry of a multi-source batch."""
        lines = [json.dumps(frame_record(p, f)) + "\n" for p, f in pairs(predictions, video_frame)]
        with self._lock:
            if self._fd is None:
                raise RuntimeError(f"{self.path} is already released")
            self._pending.extend(lines)
            if time.monotonic() - self._last_flush >= self.flush_interval:
                self._flush_locked()

    __call__ = on_prediction

    def flush(self) -> None:
        """Write the collected lines now."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        self._last_flush = time.monotonic()
        if not self._pending or self._fd is None:
            return
        data = "".join(self._pending).encode("utf-8")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.lines_written += len(self._pending)
        self._pending.clear()

    def release(self) -> None:
        """Write what is left, fsync and close. Safe to call twice."""
        with self._lock:
            if self._fd is None:
                return
            try:
                self._flush_locked()
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
