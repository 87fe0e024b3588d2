"""What to do with predictions: draw them, show them, write them to video or JSON lines, send
them over UDP, serve them to a browser, keep them in memory.

Every sink takes ``(predictions, video_frame)`` (lists of them for several sources), so any of
them can be an ``on_prediction``; ``multi_sink`` combines several. Roboflow's names work:
``render_boxes``, ``VideoFileSink``, ``UDPSink``, ``multi_sink``, ``InMemoryBufferSink``.

Example:
    >>> from functools import partial
    >>> from framepipe.sinks import JsonlSink, multi_sink, render_boxes
    >>> jsonl = JsonlSink("predictions.jsonl")  # doctest: +SKIP
    >>> on_prediction = partial(multi_sink, sinks=[render_boxes, jsonl])  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Names are imported on first use: the pipeline imports framepipe.sinks.base without paying for
# supervision (render_boxes) or PyAV (the video sink).
_EXPORTS = {
    "Sink": "framepipe.sinks.base",
    "as_sink": "framepipe.sinks.base",
    "pairs": "framepipe.sinks.base",
    "InMemoryBufferSink": "framepipe.sinks.buffer",
    "JsonlSink": "framepipe.sinks.jsonl",
    "MJPEGPreviewSink": "framepipe.sinks.mjpeg_preview",
    "MultiSink": "framepipe.sinks.multi",
    "multi_sink": "framepipe.sinks.multi",
    "DEFAULT_ANNOTATORS": "framepipe.sinks.render",
    "DEFAULT_FPS_MONITOR": "framepipe.sinks.render",
    "annotate": "framepipe.sinks.render",
    "create_tiles": "framepipe.sinks.render",
    "display_image": "framepipe.sinks.render",
    "render_boxes": "framepipe.sinks.render",
    "UDPSink": "framepipe.sinks.udp",
    "H264Writer": "framepipe.sinks.video_file",
    "VideoFileSink": "framepipe.sinks.video_file",
}

if TYPE_CHECKING:
    from framepipe.sinks.base import Sink, as_sink, pairs
    from framepipe.sinks.buffer import InMemoryBufferSink
    from framepipe.sinks.jsonl import JsonlSink
    from framepipe.sinks.mjpeg_preview import MJPEGPreviewSink
    from framepipe.sinks.multi import MultiSink, multi_sink
    from framepipe.sinks.render import (
        DEFAULT_ANNOTATORS,
        DEFAULT_FPS_MONITOR,
        annotate,
        create_tiles,
        display_image,
        render_boxes,
    )
    from framepipe.sinks.udp import UDPSink
    from framepipe.sinks.video_file import H264Writer, VideoFileSink

__all__ = [
    "DEFAULT_ANNOTATORS",
    "DEFAULT_FPS_MONITOR",
    "H264Writer",
    "InMemoryBufferSink",
    "JsonlSink",
    "MJPEGPreviewSink",
    "MultiSink",
    "Sink",
    "UDPSink",
    "VideoFileSink",
    "annotate",
    "as_sink",
    "create_tiles",
    "display_image",
    "multi_sink",
    "pairs",
    "render_boxes",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'framepipe.sinks' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
