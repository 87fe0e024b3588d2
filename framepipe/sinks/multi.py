"""``MultiSink`` and ``multi_sink``: several sinks for one pipeline, each failure isolated, every
child released.

``MultiSink(sinks)`` owns its children: it calls each in order (one that raises is logged, once
with its traceback and then counted, and the others still run) and ``release()`` releases every
child. Roboflow's ``partial(multi_sink, sinks=[...])`` is turned into one by the pipeline, so
its children are released too. In a pipeline with a live source each child gets its own thread
and bounded queue, so that a slow child never holds the others back.

Example:
    >>> from framepipe.sinks import MultiSink
    >>> calls = []
    >>> sink = MultiSink([lambda p, f: calls.append(f), lambda p, f: 1 / 0])
    >>> sink({"predictions": []}, "frame")
    >>> calls, sink.errors
    (['frame'], 1)
    >>> sink.release()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from framepipe.sinks.base import Sink, as_sink

__all__ = ["MultiSink", "multi_sink"]

logger = logging.getLogger("framepipe.sinks")


class MultiSink:
    """Calls every child sink with the same arguments and releases them all."""

    def __init__(self, sinks: Iterable[Callable[[Any, Any], None]], names: Sequence[str] | None = None) -> None:
        self.children: list[Sink] = [as_sink(s) for s in sinks]
        self.names = list(names) if names is not None else [_name(s) for s in self.children]
        self.errors = 0
        self._lock = threading.Lock()
        self._released = False

    def __call__(self, predictions: Any, video_frame: Any) -> None:
        for name, child in zip(self.names, self.children, strict=True):
            try:
                child(predictions, video_frame)
            except Exception:
                with self._lock:
                    self.errors += 1
                    first = self.errors == 1
                if first:
                    logger.exception("sink %s failed (later failures of the sinks are counted, not logged)", name)

    def release(self) -> None:
        """Release every child (each once; one that fails is logged and the others still are)."""
        with self._lock:
            if self._released:
                return
            self._released = True
        for name, child in zip(self.names, self.children, strict=True):
            try:
                child.release()
            except Exception:
                logger.exception("releasing sink %s failed", name)
        if self.errors > 1:
            logger.error("the sinks failed %d times in all", self.errors)

    def __repr__(self) -> str:
        return f"MultiSink({', '.join(self.names)})"


def _name(sink: Any) -> str:
    return str(getattr(sink, "name", None) or getattr(sink, "__name__", None) or type(sink).__name__)


def multi_sink(predictions: Any, video_frame: Any, sinks: Sequence[Callable[[Any, Any], None]]) -> None:
    """Call every sink in order with the same arguments; one that raises is logged and the others
    still run. Use it with ``functools.partial(multi_sink, sinks=[...])``: given to a pipeline,
    that becomes a ``MultiSink``, whose children are released when the pipeline ends."""
    for sink in sinks:
        try:
            sink(predictions, video_frame)
        except Exception:
            logger.exception("sink %s failed", getattr(sink, "__name__", repr(sink)))


multi_sink.framepipe_composite = True  # type: ignore[attr-defined]
