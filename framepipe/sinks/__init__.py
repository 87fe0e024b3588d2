"""What to do with predictions: draw them, write them to video or JSON lines.

Every sink takes ``(predictions, video_frame)`` (lists of them for several sources), so any of
them can be an ``on_prediction``.

Example:
    >>> from framepipe.sinks import render_boxes
    >>> # InferencePipeline.init(..., on_prediction=render_boxes)
"""

from framepipe.sinks.jsonl import JsonlSink
from framepipe.sinks.render import annotate, create_tiles, display_image, render_boxes
from framepipe.sinks.video_file import H264Writer

__all__ = ["H264Writer", "JsonlSink", "annotate", "create_tiles", "display_image", "render_boxes"]
