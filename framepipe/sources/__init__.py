"""Opening and decoding video: files and streams with PyAV, webcams with OpenCV; buffering
strategies, reconnection, pacing and honest timestamps.

Example:
    >>> from framepipe.sources import SourceOptions, VideoSource
    >>> source = VideoSource("clip.mp4", source_id=0, options=SourceOptions(realtime=True))  # doctest: +SKIP
"""

from framepipe.sources.buffering import FrameBuffer
from framepipe.sources.entities import (
    BufferConsumptionStrategy,
    BufferFillingStrategy,
    SourceMetadata,
    SourceProperties,
    StatusUpdate,
    StreamState,
    UpdateSeverity,
    VideoFrame,
)
from framepipe.sources.readers import ReaderOptions, open_reader, redact
from framepipe.sources.reconnect import Backoff
from framepipe.sources.video_source import DEFAULT_BUFFER_SIZE, SourceOptions, VideoSource

__all__ = [
    "DEFAULT_BUFFER_SIZE",
    "Backoff",
    "BufferConsumptionStrategy",
    "BufferFillingStrategy",
    "FrameBuffer",
    "ReaderOptions",
    "SourceMetadata",
    "SourceOptions",
    "SourceProperties",
    "StatusUpdate",
    "StreamState",
    "UpdateSeverity",
    "VideoFrame",
    "VideoSource",
    "open_reader",
    "redact",
]
