"""Opening and decoding video: files and streams with PyAV, webcams with OpenCV.

Example:
    >>> from framepipe.sources import VideoSource
    >>> source = VideoSource("clip.mp4", source_id=0)  # doctest: +SKIP
"""

from framepipe.sources.entities import (
    BufferConsumptionStrategy,
    BufferFillingStrategy,
    SourceProperties,
    StatusUpdate,
    UpdateSeverity,
    VideoFrame,
)
from framepipe.sources.readers import open_reader
from framepipe.sources.video_source import DEFAULT_BUFFER_SIZE, VideoSource

__all__ = [
    "DEFAULT_BUFFER_SIZE",
    "BufferConsumptionStrategy",
    "BufferFillingStrategy",
    "SourceProperties",
    "StatusUpdate",
    "UpdateSeverity",
    "VideoFrame",
    "VideoSource",
    "open_reader",
]
