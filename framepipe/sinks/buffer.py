"""``InMemoryBufferSink``: keep the latest results in memory, to be consumed by your own loop.

Example:
    >>> from framepipe.sinks import InMemoryBufferSink
    >>> sink = InMemoryBufferSink.init(queue_size=2)
    >>> for frame_id in (1, 2, 3):
    ...     sink.on_prediction({"predictions": []}, frame_id)
    >>> sink.consume_prediction()
    ([{'predictions': []}], [2])
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any


class InMemoryBufferSink:
    """The last ``queue_size`` results, each as ``(list of predictions, list of frames)``."""

    def __init__(self, queue_size: int) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self._buffer: deque[tuple[list[Any], list[Any]]] = deque(maxlen=queue_size)
        self._lock = threading.Lock()

    @classmethod
    def init(cls, queue_size: int) -> InMemoryBufferSink:
        return cls(queue_size)

    def on_prediction(self, predictions: Any, video_frame: Any) -> None:
        if not isinstance(predictions, list):
            predictions, video_frame = [predictions], [video_frame]
        with self._lock:
            self._buffer.append((predictions, video_frame))

    __call__ = on_prediction

    def release(self) -> None:
        """Nothing to finish: what is kept stays readable."""

    def empty(self) -> bool:
        with self._lock:
            return not self._buffer

    def consume_prediction(self) -> tuple[list[Any], list[Any]]:
        """The oldest kept result; raises ``IndexError`` when empty."""
        with self._lock:
            return self._buffer.popleft()
