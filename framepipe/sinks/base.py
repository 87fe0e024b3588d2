"""The sink interface: what a pipeline calls with its results, and how it is finished.

A sink is called ``sink(predictions, video_frame)`` for every result (lists of both, aligned by
source id with ``None`` where a source had no frame, when a pipeline has several sources), and
``sink.release()`` once, when the pipeline that owns it ends: files are finished, sockets
closed. Any callable is accepted where a sink is; ``as_sink`` gives it the interface (a bound
method of a sink object, ``VideoFileSink.on_prediction``, releases its object; the documented
``partial(multi_sink, sinks=[...])`` becomes an owning ``MultiSink``). ``pairs`` is the one place
where one-or-many arguments become ``(prediction, frame)`` pairs.

Example:
    >>> from framepipe.sinks.base import pairs
    >>> pairs({"predictions": []}, "frame")
    [({'predictions': []}, 'frame')]
    >>> pairs([{"predictions": []}, None], ["frame 0", None])
    [({'predictions': []}, 'frame 0')]
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

__all__ = ["CallableSink", "Sink", "as_sink", "pairs"]

logger = logging.getLogger("framepipe.sinks")


@runtime_checkable
class Sink(Protocol):
    """Called with every result; released once, when its pipeline ends."""

    def __call__(self, predictions: Any, video_frame: Any) -> None: ...

    def release(self) -> None: ...


def pairs(predictions: Any, video_frame: Any) -> list[tuple[Any, Any]]:
    """``(prediction, frame)`` for one frame, or for each frame present in a multi-source batch."""
    if isinstance(video_frame, list):
        results = predictions if isinstance(predictions, list) else [predictions] * len(video_frame)
        return [(p, f) for p, f in zip(results, video_frame, strict=True) if f is not None]
    if video_frame is None:
        return []
    return [(predictions, video_frame)]


class CallableSink:
    """A plain callable as a ``Sink``: ``release()`` releases the object it is bound to, if that
    object has a ``release()`` (``VideoFileSink.on_prediction``), or the callable's own."""

    def __init__(self, function: Callable[[Any, Any], None]) -> None:
        self.function = function
        self.name = getattr(function, "__qualname__", None) or getattr(function, "__name__", None) or repr(function)
        self._released = False

    def __call__(self, predictions: Any, video_frame: Any) -> None:
        self.function(predictions, video_frame)

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        owner = getattr(self.function, "__self__", self.function)
        release = getattr(owner, "release", None)
        if callable(release):
            release()

    def __repr__(self) -> str:
        return f"CallableSink({self.name})"


def as_sink(target: Any) -> Sink:
    """``target`` with the ``Sink`` interface (see the module's docstring)."""
    if isinstance(target, functools.partial) and getattr(target.func, "framepipe_composite", False):
        from framepipe.sinks.multi import MultiSink

        return MultiSink(target.keywords.get("sinks", ()))
    if isinstance(target, Sink) and not hasattr(target, "__self__"):
        return target
    if not callable(target):
        raise TypeError(f"a sink is a callable(predictions, video_frame), got {type(target).__name__}")
    return CallableSink(target)
