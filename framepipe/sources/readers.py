"""Decoding backends: PyAV (files and network streams) and OpenCV (webcams, and a fallback).

A reader opens its source when constructed, so that a missing file, a file that is not video or
a stream that refuses us fails right away with a specific error; then ``frames()`` yields
``DecodedFrame``s, which turn into BGR arrays only when asked (a frame that is going to be
dropped costs no colour conversion). A reader owns its native resources: only the thread that
reads frames may call ``close()``, which is safe to call twice.

Network reads are bounded: ``open_timeout`` for connecting, ``read_timeout`` for each read. A
camera that stops sending raises ``SourceConnectionError`` after ``read_timeout`` instead of
freezing the thread.

Example:
    >>> from framepipe.sources.readers import open_reader
    >>> reader = open_reader("clip.mp4")  # doctest: +SKIP
    >>> reader.properties.fps  # doctest: +SKIP
    30.0
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from framepipe._internal.redact import redact_reference
from framepipe.errors import (
    InvalidVideoError,
    SourceAccessError,
    SourceConnectionError,
    SourceNotFoundError,
)
from framepipe.sources.entities import SourceProperties

logger = logging.getLogger("framepipe.sources")

STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


def is_stream(reference: str | int) -> bool:
    """Whether ``reference`` is a network URL (as opposed to a file or a webcam index)."""
    return isinstance(reference, str) and reference.lower().startswith(STREAM_PREFIXES)


def redact(reference: str | int) -> str:
    """A source reference fit for logs: a URL's credentials and secret parameters become ``***``
    (framepipe's one redactor, ``framepipe._internal.redact``)."""
    return redact_reference(reference)


@dataclass
class ReaderOptions:
    """How to open and read a source.

    ``rtsp_transport``: ``"tcp"`` (default: no lost packets, works through NAT) or ``"udp"``.
    ``decoder_threads``: FFmpeg's decoding threads (0: FFmpeg chooses). ``open_timeout`` and
    ``read_timeout`` bound network waits, in seconds. ``backend``: ``"auto"`` (PyAV, OpenCV for
    webcams), ``"pyav"`` or ``"opencv"``.
    """

    rtsp_transport: str = "tcp"
    decoder_threads: int = 0
    open_timeout: float = 10.0
    read_timeout: float = 5.0
    backend: str = "auto"


class DecodedFrame(Protocol):
    """A decoded frame, converted to BGR on demand."""

    pts: float | None

    def to_bgr(self) -> np.ndarray: ...


class FrameReader(Protocol):
    """What a decoding backend offers."""

    properties: SourceProperties
    corrupt_packets: int

    def frames(self) -> Iterator[DecodedFrame]: ...

    def close(self) -> None: ...


class _PyAVFrame:
    __slots__ = ("_frame", "pts")

    def __init__(self, frame: Any, pts: float | None) -> None:
        self._frame = frame
        self.pts = pts

    def to_bgr(self) -> np.ndarray:
        return self._frame.to_ndarray(format="bgr24")


def _pyav_error(reference: str, error: Exception, stream: bool) -> Exception:
    import av

    name = redact(reference)
    reason = getattr(error, "strerror", None) or str(error)
    if isinstance(error, (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError)):
        return SourceAccessError(f"{name} refused access ({reason}): check the user name and password in the URL")
    if isinstance(error, av.error.HTTPNotFoundError):
        return SourceAccessError(f"{name} was not found ({reason}): check the URL's path")
    if isinstance(error, av.error.DecoderNotFoundError):
        return InvalidVideoError(f"{name}: no decoder for its video codec ({reason})")
    if stream:
        return SourceConnectionError(f"could not read stream {name}: {reason}")
    if isinstance(error, (av.error.InvalidDataError, av.error.EOFError)):
        return InvalidVideoError(f"{name} is not a video FFmpeg can read ({reason})")
    return InvalidVideoError(f"could not read {name}: {reason}")


def _refusals() -> tuple[type[BaseException], ...]:
    import av

    return (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError, av.error.HTTPNotFoundError)


class PyAVReader:
    """Decodes with PyAV (FFmpeg). Packets that fail to decode are skipped and counted."""

    def __init__(self, reference: str, options: ReaderOptions | None = None) -> None:
        import av

        self.reference = reference
        self.options = options or ReaderOptions()
        self.corrupt_packets = 0
        self._closed = False
        stream = is_stream(reference)
        if not stream:
            if not os.path.exists(reference):
                raise SourceNotFoundError(f"video file {reference!r} does not exist")
            if os.path.isdir(reference):
                raise InvalidVideoError(f"{reference!r} is a folder, not a video file")
            if os.path.getsize(reference) == 0:
                raise InvalidVideoError(f"{reference!r} is empty (0 bytes)")
        av_options = {}
        if reference.lower().startswith(("rtsp://", "rtsps://")):
            av_options["rtsp_transport"] = self.options.rtsp_transport
        timeout = (self.options.open_timeout, self.options.read_timeout) if stream else None
        began = time.monotonic()
        try:
            self._container = av.open(reference, options=av_options, timeout=timeout)
        except (av.error.FFmpegError, OSError) as error:
            waited = time.monotonic() - began
            if stream and waited >= 0.9 * self.options.open_timeout and not isinstance(error, _refusals()):
                # FFmpeg reports a server that never answers as "Invalid data found"
                raise SourceConnectionError(
                    f"could not read stream {redact(reference)}: timed out after {waited:.1f} s without an answer "
                    f"(open_timeout={self.options.open_timeout:g} s)"
                ) from error
            raise _pyav_error(reference, error, stream) from error
        try:
            if not self._container.streams.video:
                raise InvalidVideoError(f"{redact(reference)} has no video stream")
            self._stream = self._container.streams.video[0]
            codec = self._stream.codec_context
            if codec is None:
                raise InvalidVideoError(f"{redact(reference)}: no decoder for its video codec (unsupported codec)")
            if self.options.decoder_threads:
                codec.thread_count = self.options.decoder_threads
            self._stream.thread_type = "SLICE"  # measured: frame threading costs 2 ms more CPU per 720p frame
            rate = self._stream.average_rate or self._stream.guessed_rate
            if codec.width <= 0 or codec.height <= 0:
                raise InvalidVideoError(f"{redact(reference)}: the video stream has no frame size (unsupported codec?)")
            self.properties = SourceProperties(
                width=codec.width,
                height=codec.height,
                total_frames=0 if stream else int(self._stream.frames or 0),
                is_file=not stream,
                fps=float(rate) if rate else 0.0,
                is_reconnectable=stream,
            )
        except BaseException:
            self._container.close()
            raise

    def frames(self) -> Iterator[DecodedFrame]:
        """Decoded frames in order; a stream that fails raises ``SourceConnectionError``."""
        import av

        time_base = self._stream.time_base
        stream = is_stream(self.reference)
        try:
            for packet in self._container.demux(self._stream):
                try:
                    decoded = packet.decode()
                except av.error.InvalidDataError:
                    self.corrupt_packets += 1
                    logger.debug("skipped a corrupt packet in %s", redact(self.reference))
                    continue
                for frame in decoded:
                    pts = frame.pts if frame.pts is not None else packet.pts
                    yield _PyAVFrame(frame, float(pts * time_base) if pts is not None and time_base else None)
        except (av.error.FFmpegError, OSError) as error:
            if stream:
                raise _pyav_error(self.reference, error, stream) from error
            raise InvalidVideoError(f"reading {redact(self.reference)} failed: {error}") from error

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._container.close()


class _OpenCVFrame:
    __slots__ = ("_capture", "pts")

    def __init__(self, capture: Any, pts: float | None) -> None:
        self._capture = capture
        self.pts = pts

    def to_bgr(self) -> np.ndarray:
        ok, image = self._capture.retrieve()
        if not ok or image is None:
            raise SourceConnectionError("OpenCV could not retrieve the grabbed frame")
        return np.asarray(image)


class OpenCVReader:
    """Decodes with ``cv2.VideoCapture``: webcams by index, or anything OpenCV opens.

    Frames are grabbed when read and converted only when ``to_bgr()`` is called (so a dropped
    frame is never converted), which means a frame must be converted before the next one is read.
    """

    def __init__(self, reference: str | int, options: ReaderOptions | None = None) -> None:
        import cv2

        self.reference = reference
        self.options = options or ReaderOptions()
        self.corrupt_packets = 0
        self._closed = False
        if isinstance(reference, str) and not is_stream(reference) and not os.path.exists(reference):
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

    def frames(self) -> Iterator[DecodedFrame]:
        import cv2

        while self._capture.grab():
            msec = self._capture.get(cv2.CAP_PROP_POS_MSEC)
            yield _OpenCVFrame(self._capture, msec / 1000.0 if msec and msec > 0 else None)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._capture.release()


def open_reader(reference: str | int | os.PathLike[str], options: ReaderOptions | None = None) -> FrameReader:
    """Open ``reference`` with the right backend: OpenCV for a webcam index (or when asked), PyAV
    otherwise."""
    if isinstance(reference, bool) or not isinstance(reference, (str, int, os.PathLike)):
        raise TypeError(f"a video reference is a path, URL or webcam index, got {type(reference).__name__}")
    options = options or ReaderOptions()
    if options.backend not in ("auto", "pyav", "opencv"):
        raise ValueError(f"backend must be 'auto', 'pyav' or 'opencv', got {options.backend!r}")
    if isinstance(reference, int) or options.backend == "opencv":
        return OpenCVReader(reference if isinstance(reference, int) else os.fspath(reference), options)
    return PyAVReader(os.fspath(reference), options)
