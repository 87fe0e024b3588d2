"""What sources hand downstream: frames, source properties, buffering strategies, status events.

Names and fields follow Roboflow Inference (``VideoFrame``, ``SourceProperties``,
``BufferFillingStrategy``, ``BufferConsumptionStrategy``, ``StatusUpdate``, ``UpdateSeverity``),
so code written against it reads the same.

Example:
    >>> from datetime import datetime
    >>> import numpy as np
    >>> from framepipe.sources.entities import VideoFrame
    >>> frame = VideoFrame(np.zeros((2, 2, 3), np.uint8), frame_id=1, frame_timestamp=datetime.now())
    >>> frame.frame_id, frame.source_id
    (1, None)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

import numpy as np


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame.

    ``image`` is BGR ``uint8`` ``(H, W, 3)``; ``frame_id`` counts decoded frames of its source from 1;
    ``frame_timestamp`` is the wall clock when the frame was decoded (a real capture time, also for
    files); ``fps`` is the declared rate and ``measured_fps`` the observed one; ``presentation_time``
    is the stream's own timestamp in seconds (PTS), when it has one.
    """

    image: np.ndarray
    frame_id: int
    frame_timestamp: datetime
    fps: float | None = None
    measured_fps: float | None = None
    source_id: int | None = None
    comes_from_video_file: bool | None = None
    presentation_time: float | None = None


@dataclass(frozen=True)
class SourceProperties:
    """What a source said about itself when it opened. ``total_frames`` is 0 when unknown."""

    width: int
    height: int
    total_frames: int
    is_file: bool
    fps: float
    is_reconnectable: bool | None = None
    timestamp_created: datetime | None = None


class BufferFillingStrategy(str, Enum):
    """What a decoder does when its frame buffer is full (Roboflow's names)."""

    WAIT = "WAIT"
    DROP_OLDEST = "DROP_OLDEST"
    ADAPTIVE_DROP_OLDEST = "ADAPTIVE_DROP_OLDEST"
    DROP_LATEST = "DROP_LATEST"
    ADAPTIVE_DROP_LATEST = "ADAPTIVE_DROP_LATEST"


class BufferConsumptionStrategy(str, Enum):
    """How the consumer takes frames: ``LAZY`` the oldest, ``EAGER`` the newest (older discarded)."""

    LAZY = "LAZY"
    EAGER = "EAGER"


class StreamState(str, Enum):
    """Where a source is in its life (Roboflow's states)."""

    NOT_STARTED = "NOT_STARTED"
    INITIALISING = "INITIALISING"
    RESTARTING = "RESTARTING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    MUTED = "MUTED"
    TERMINATING = "TERMINATING"
    ENDED = "ENDED"
    ERROR = "ERROR"


@dataclass(frozen=True)
class SourceMetadata:
    """A source's description (``VideoSource.describe_source()``); the reference has its
    credentials replaced by ``***``."""

    source_properties: SourceProperties | None
    source_reference: str
    buffer_size: int
    state: StreamState
    buffer_filling_strategy: BufferFillingStrategy | None
    buffer_consumption_strategy: BufferConsumptionStrategy | None
    source_id: int | None = None


class UpdateSeverity(Enum):
    """Severity of a status update; values are ``logging`` levels."""

    DEBUG = logging.DEBUG
    INFO = logging.INFO
    WARNING = logging.WARNING
    ERROR = logging.ERROR


@dataclass(frozen=True)
class StatusUpdate:
    """An event from a source, the inference thread or the sink dispatcher."""

    timestamp: datetime
    severity: UpdateSeverity
    event_type: str
    payload: dict[str, Any] = field(default_factory=dict)
    context: str = ""
