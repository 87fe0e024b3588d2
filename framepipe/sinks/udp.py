"""``UDPSink``: each frame's predictions as one JSON datagram (Roboflow's message format).

The message is the prediction dict plus ``"inference_metadata": {"source_id", "frame_id",
"frame_decoding_time", "emission_time"}`` (ISO times). Unlike Roboflow's, the sink does not
change the dict it is given, and a message larger than one datagram (65,507 bytes) is not sent
half: it is dropped, counted in ``oversized`` and logged once.

Example:
    >>> from framepipe.sinks import UDPSink
    >>> sink = UDPSink.init(ip_address="127.0.0.1", port=9999)
    >>> # InferencePipeline.init(..., on_prediction=sink.send_predictions)
"""

from __future__ import annotations

import json
import logging
import socket
from datetime import datetime
from typing import Any

from framepipe.sinks.base import pairs
from framepipe.sources.entities import VideoFrame

logger = logging.getLogger("framepipe.sinks")

MAX_DATAGRAM = 65_507


def udp_message(prediction: dict[str, Any] | None, frame: VideoFrame) -> dict[str, Any]:
    """The JSON object sent for one frame."""
    return {
        **(prediction or {}),
        "inference_metadata": {
            "source_id": frame.source_id,
            "frame_id": frame.frame_id,
            "frame_decoding_time": frame.frame_timestamp.isoformat(),
            "emission_time": datetime.now().isoformat(),
        },
    }


class UDPSink:
    """Sends one datagram per frame to ``(ip_address, port)``."""

    def __init__(self, ip_address: str, port: int, udp_socket: socket.socket) -> None:
        self.ip_address = ip_address
        self.port = port
        self._socket = udp_socket
        self.sent = 0
        self.oversized = 0

    @classmethod
    def init(cls, ip_address: str, port: int) -> UDPSink:
        """Roboflow's constructor (broadcast allowed, 64 KiB send buffer)."""
        udp_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        udp_socket.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        udp_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65_536)
        return cls(ip_address, port, udp_socket)

    def send_predictions(
        self,
        predictions: dict[str, Any] | list[dict[str, Any] | None] | None,
        video_frame: VideoFrame | list[VideoFrame | None] | None,
    ) -> None:
        """Send one message per frame (per non-empty entry of a multi-source batch)."""
        for prediction, frame in pairs(predictions, video_frame):
            payload = json.dumps(udp_message(prediction, frame)).encode("utf-8")
            if len(payload) > MAX_DATAGRAM:
                if not self.oversized:
                    logger.warning(
                        "a %d-byte UDP message is larger than one datagram: not sent (counted)", len(payload)
                    )
                self.oversized += 1
                continue
            self._socket.sendto(payload, (self.ip_address, self.port))
            self.sent += 1

    on_prediction = send_predictions
    __call__ = send_predictions

    def release(self) -> None:
        self._socket.close()
