"""Status event types: Roboflow Inference's values, as an enum.

``EventType`` members are strings, so ``update.event_type == "CONNECTED"`` keeps working and
handlers written for Roboflow's plain strings need no change.

Example:
    >>> from framepipe.events import EventType
    >>> EventType("SOURCE_STATE_UPDATE") is EventType.SOURCE_STATE_UPDATE, EventType.CONNECTED == "CONNECTED"
    (True, True)
"""

from __future__ import annotations

from enum import Enum

__all__ = ["EventType"]


class EventType(str, Enum):
    """Every ``StatusUpdate.event_type`` framepipe emits."""

    # sources (context "video_source"), Roboflow's names
    SOURCE_STATE_UPDATE = "SOURCE_STATE_UPDATE"
    SOURCE_ERROR = "SOURCE_ERROR"
    FRAME_CAPTURED = "FRAME_CAPTURED"
    FRAME_DROPPED = "FRAME_DROPPED"
    FRAME_CONSUMED = "FRAME_CONSUMED"
    VIDEO_CONSUMPTION_STARTED = "VIDEO_CONSUMPTION_STARTED"
    VIDEO_CONSUMPTION_FINISHED = "VIDEO_CONSUMPTION_FINISHED"
    SOURCE_CONNECTION_ATTEMPT_FAILED = "SOURCE_CONNECTION_ATTEMPT_FAILED"
    SOURCE_CONNECTION_LOST = "SOURCE_CONNECTION_LOST"
    # sources: framepipe's reconnection events
    CONNECTED = "CONNECTED"
    LOST = "LOST"
    RECONNECTING = "RECONNECTING"
    END_OF_STREAM = "END_OF_STREAM"
    # pipeline (context "inference_pipeline"), Roboflow's names
    INFERENCE_THREAD_STARTED = "INFERENCE_THREAD_STARTED"
    INFERENCE_THREAD_FINISHED = "INFERENCE_THREAD_FINISHED"
    INFERENCE_COMPLETED = "INFERENCE_COMPLETED"
    INFERENCE_ERROR = "INFERENCE_ERROR"
    INFERENCE_RESULTS_DISPATCHING_ERROR = "INFERENCE_RESULTS_DISPATCHING_ERROR"

    def __str__(self) -> str:
        return str(self.value)
