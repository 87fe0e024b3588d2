"""Decoding backends: PyAV (files and network streams) and OpenCV (webcams, and a fallback).

A reader opens its source when constructed (so a missing file or a file that is not video fails
right away, with a specific error) and then yields ``(bgr_image, pts_seconds)`` pairs. It owns its
native resources: ``close()`` releases them and is safe to call twice, from any thread.

Example:
    >>> from framepipe.sources.readers import open_reader
    >>> reader = open_reader("clip.mp4")  # doctest: +SKIP
    >>> reader.properties.fps  # doctest: +SKIP
    30.0
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from typing import Protocol

import numpy as np

from framepipe.errors import InvalidVideoError, SourceConnectionError, SourceNotFoundError
from framepipe.sources.entities import SourceProperties

logger = logging.getLogger("framepipe.sources")

STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


class FrameReader(Protocol):
    """What a decoding backend offers."""

    properties: SourceProperties
    corrupt_packets: int

    def frames(self) -> Iterator[tuple[np.ndarray, float | None]]: ...

    def close(self) -> None: ...


def redact(reference: str | int) -> str:
    """A source reference fit for logs: credentials in a URL are replaced by ``***``."""
    text = str(reference)
    scheme, sep, rest = text.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return text


class PyAVReader:
    """Decodes with PyAV (FFmpeg). Packets that fail to decode are skipped and counted."""

    def __init__(self, reference: str, decoder_threads: int = 0, open_timeout: float = 10.0) -> None:
        import av

        self.reference = reference
        self.corrupt_packets = 0
        self._lock = threading.Lock()
        self._closed = False
        is_stream = reference.lower().startswith(STREAM_PREFIXES)
        if not is_stream and not os.path.exists(reference):
            raise SourceNotFoundError(f"video file {reference!r} does not exist")
        if not is_stream and os.path.isdir(reference):
            raise InvalidVideoError(f"{reference!r} is a folder, not a video file")
        options = {"rtsp_transport": "tcp"} if reference.lower().startswith(("rtsp://", "rtsps://")) else {}
        try:
            self._container = av.open(reference, options=options, timeout=open_timeout if is_stream else None)
        except (av.error.InvalidDataError, av.error.EOFError) as error:
            raise InvalidVideoError(
                f"{redact(reference)} is not a video FFmpeg can read ({error.strerror or error})"
            ) from error
        except av.error.FFmpegError as error:
            if is_stream:
                raise SourceConnectionError(
                    f"could not open stream {redact(reference)}: {error.strerror or error}"
                ) from error
            raise InvalidVideoError(f"could not open {redact(reference)}: {error.strerror or error}") from error
        try:
            if not self._container.streams.video:
                raise InvalidVideoError(f"{redact(reference)} has no video stream")
            self._stream = self._container.streams.video[0]
            codec = self._stream.codec_context
            if decoder_threads:
                codec.thread_count = decoder_threads
            self._stream.thread_type = "AUTO"
            rate = self._stream.average_rate or self._stream.guessed_rate
            fps = float(rate) if rate else 0.0
            if codec.width <= 0 or codec.height <= 0:
                raise InvalidVideoError(f"{redact(reference)}: the video stream has no frame size (unsupported codec?)")
            self.properties = SourceProperties(
                width=codec.width,
                height=codec.height,
                total_frames=int(self._stream.frames or 0),
                is_file=not is_stream,
                fps=fps,
                is_reconnectable=is_stream,
            )
        except BaseException:
            self._container.close()
            raise

    def frames(self) -> Iterator[tuple[np.ndarray, float | None]]:
        import av

        time_base = self._stream.time_base
        for packet in self._container.demux(self._stream):
            try:
                decoded = packet.decode()
            except av.error.InvalidDataError:
                self.corrupt_packets += 1
                logger.debug("skipped a corrupt packet in %s", redact(self.reference))
                continue
            for frame in decoded:
                pts = float(frame.pts * time_base) if frame.pts is not None and time_base else None
                yield frame.to_ndarray(format="bgr24"), pts

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._container.close()


class OpenCVReader:
    """Decodes with ``cv2.VideoCapture``: webcams by index, or anything OpenCV opens."""

    def __init__(self, reference: str | int) -> None:
        import cv2

        self.reference = reference
        self.corrupt_packets = 0
        self._lock = threading.Lock()
        self._closed = False
        is_path = isinstance(reference, str) and not reference.lower().startswith(STREAM_PREFIXES)
        if is_path and not os.path.exists(str(reference)):
            raise SourceNotFoundError(f"video file {reference!r} does not exist")
        self._capture = cv2.VideoCapture(reference)
        if not self._capture.isOpened():
            self._capture.release()
            kind = "camera" if isinstance(reference, int) else "source"
            raise SourceConnectionError(f"OpenCV could not open {kind} {redact(reference)}")
        is_file = isinstance(reference, str) and os.path.exists(reference)
        total = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.properties = SourceProperties(
            width=int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            total_frames=max(total, 0) if is_file else 0,
            is_file=is_file,
            fps=float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0),
            is_reconnectable=not is_file,
        )

    def frames(self) -> Iterator[tuple[np.ndarray, float | None]]:
        import cv2

        while True:
            ok, image = self._capture.read()
            if not ok or image is None:
                return
            msec = self._capture.get(cv2.CAP_PROP_POS_MSEC)
            yield image, (msec / 1000.0 if msec and msec > 0 else None)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._capture.release()


def open_reader(reference: str | int, decoder_threads: int = 0) -> FrameReader:
    """Open ``reference`` with the right backend: OpenCV for a webcam index, PyAV otherwise."""
    if isinstance(reference, bool) or not isinstance(reference, (str, int, os.PathLike)):
        raise TypeError(f"a video reference is a path, URL or webcam index, got {type(reference).__name__}")
    if isinstance(reference, int):
        return OpenCVReader(reference)
    return PyAVReader(os.fspath(reference), decoder_threads=decoder_threads)
