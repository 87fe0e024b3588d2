"""A video source: one decoder thread feeding a bounded frame buffer.

The decoder thread owns the reader (it opens nothing itself: the reader is opened in ``start()``
on the caller's thread, so that a missing file or a file that is not video raises there) and
closes it when it ends. Files default to every frame (``WAIT``: the decoder waits for room);
live streams default to the freshest frame (``DROP_OLDEST``: the oldest buffered frame makes
room, and is counted as dropped).

Example:
    >>> from framepipe.sources import VideoSource
    >>> source = VideoSource("clip.mp4")  # doctest: +SKIP
    >>> source.start()  # doctest: +SKIP
    >>> frame = source.read_frame()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from framepipe.errors import PipelineStateError
from framepipe.sources.entities import (
    BufferConsumptionStrategy,
    BufferFillingStrategy,
    SourceProperties,
    StatusUpdate,
    UpdateSeverity,
    VideoFrame,
)
from framepipe.sources.readers import FrameReader, open_reader, redact

logger = logging.getLogger("framepipe.sources")

DEFAULT_BUFFER_SIZE = int(os.environ.get("VIDEO_SOURCE_BUFFER_SIZE", "8"))
"""Frames buffered per source. Roboflow buffers 64; 8 keeps memory and file latency low and is
enough to hide decoder jitter. ``VIDEO_SOURCE_BUFFER_SIZE`` overrides it, as in Roboflow."""

_POLL = 0.05  # seconds between checks of the stop flag while waiting


class _EndOfStream:
    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class VideoSource:
    """Decodes one video reference on its own thread into a bounded buffer.

    ``read_frame`` returns the next frame, or ``None`` once the stream has ended (``error`` then
    holds the exception that ended it, if any). Counters: ``frames_decoded``, ``frames_dropped``,
    ``corrupt_packets``.
    """

    def __init__(
        self,
        video_reference: str | int,
        source_id: int = 0,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        buffer_filling_strategy: BufferFillingStrategy | str | None = None,
        buffer_consumption_strategy: BufferConsumptionStrategy | str | None = None,
        status_update_handlers: Sequence[Callable[[StatusUpdate], None]] = (),
        decoder_threads: int = 0,
    ) -> None:
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be at least 1, got {buffer_size}")
        self.reference = video_reference
        self.source_id = source_id
        self.buffer_size = buffer_size
        self._filling = BufferFillingStrategy(buffer_filling_strategy) if buffer_filling_strategy else None
        self._consumption = (
            BufferConsumptionStrategy(buffer_consumption_strategy) if buffer_consumption_strategy else None
        )
        self._handlers = list(status_update_handlers)
        self._decoder_threads = decoder_threads
        self._buffer: queue.Queue[VideoFrame | _EndOfStream] = queue.Queue(maxsize=buffer_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reader: FrameReader | None = None
        self._ended = False
        self.error: BaseException | None = None
        self.properties: SourceProperties | None = None
        self.frames_decoded = 0
        self.frames_dropped = 0

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Open the source (raising ``SourceNotFoundError``, ``InvalidVideoError`` or
        ``SourceConnectionError`` here) and start decoding."""
        if self._thread is not None:
            raise PipelineStateError(f"source {self.source_id} was already started")
        reader = open_reader(self.reference, decoder_threads=self._decoder_threads)
        self._reader, self.properties = reader, reader.properties
        if self._filling is None:
            self._filling = (
                BufferFillingStrategy.WAIT if reader.properties.is_file else BufferFillingStrategy.DROP_OLDEST
            )
        if self._consumption is None:
            self._consumption = (
                BufferConsumptionStrategy.LAZY if reader.properties.is_file else BufferConsumptionStrategy.EAGER
            )
        self._thread = threading.Thread(target=self._decode, name=f"framepipe-decoder-{self.source_id}", daemon=True)
        self._thread.start()

    def terminate(self, wait: bool = True, timeout: float = 1.0) -> None:
        """Stop decoding and drop buffered frames; with ``wait`` join the decoder thread."""
        self._stop.set()
        self._purge()
        if wait and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def corrupt_packets(self) -> int:
        return self._reader.corrupt_packets if self._reader is not None else 0

    @property
    def buffer_filling_strategy(self) -> BufferFillingStrategy | None:
        return self._filling

    @property
    def buffer_consumption_strategy(self) -> BufferConsumptionStrategy | None:
        return self._consumption

    # -- consumer side ---------------------------------------------------------------------------
    def read_frame(self, timeout: float | None = None) -> VideoFrame | None:
        """The next frame; ``None`` when the stream has ended. Raises ``TimeoutError`` when no
        frame came within ``timeout`` seconds."""
        if self._ended:
            return None
        try:
            item = self._buffer.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no frame from source {self.source_id} within {timeout} s") from None
        if self._consumption is BufferConsumptionStrategy.EAGER and isinstance(item, VideoFrame):
            while True:  # take the newest frame, discarding older ones (not counted, as in Roboflow)
                try:
                    newer = self._buffer.get_nowait()
                except queue.Empty:
                    break
                if isinstance(newer, _EndOfStream):
                    self._buffer.put(newer)  # deliver the frame now, the end next time
                    break
                item = newer
        if isinstance(item, _EndOfStream):
            self._ended = True
            self.error = item.error
            return None
        return item

    # -- decoder thread --------------------------------------------------------------------------
    def _emit(self, event_type: str, severity: UpdateSeverity, **payload: Any) -> None:
        update = StatusUpdate(
            datetime.now(), severity, event_type, {"source_id": self.source_id, **payload}, "video_source"
        )
        for handler in self._handlers:
            try:
                handler(update)
            except Exception:  # a faulty handler must not stop decoding
                logger.warning("status update handler failed on %s", event_type, exc_info=True)

    def _decode(self) -> None:
        reader = self._reader
        assert reader is not None
        error: BaseException | None = None
        properties = reader.properties
        fps = properties.fps or None
        self._emit("VIDEO_CONSUMPTION_STARTED", UpdateSeverity.INFO)
        started = time.monotonic()
        try:
            for image, pts in reader.frames():
                if self._stop.is_set():
                    break
                self.frames_decoded += 1
                elapsed = time.monotonic() - started
                measured = fps if properties.is_file else (self.frames_decoded / elapsed if elapsed > 0 else None)
                frame = VideoFrame(
                    image=image,
                    frame_id=self.frames_decoded,
                    frame_timestamp=datetime.now(),
                    fps=fps,
                    measured_fps=measured,
                    source_id=self.source_id,
                    comes_from_video_file=properties.is_file,
                    presentation_time=pts,
                )
                self._push(frame)
        except Exception as exc:  # reported to the consumer through the end-of-stream marker
            error = exc
            logger.error("source %s (%s) failed: %s", self.source_id, redact(self.reference), exc)
            self._emit("SOURCE_ERROR", UpdateSeverity.ERROR, error_type=type(exc).__name__, error_message=str(exc))
        finally:
            reader.close()
            self._emit("VIDEO_CONSUMPTION_FINISHED", UpdateSeverity.INFO)
            self._finish(error)

    def _push(self, frame: VideoFrame) -> None:
        if self._filling is BufferFillingStrategy.WAIT:
            while not self._stop.is_set():
                try:
                    self._buffer.put(frame, timeout=_POLL)
                    return
                except queue.Full:
                    continue
            return
        if self._filling in (BufferFillingStrategy.DROP_LATEST, BufferFillingStrategy.ADAPTIVE_DROP_LATEST):
            try:
                self._buffer.put_nowait(frame)
            except queue.Full:
                self._drop(frame, "DROP_LATEST strategy")
            return
        while True:  # DROP_OLDEST and ADAPTIVE_DROP_OLDEST
            try:
                self._buffer.put_nowait(frame)
                return
            except queue.Full:
                try:
                    oldest = self._buffer.get_nowait()
                except queue.Empty:
                    continue
                if isinstance(oldest, VideoFrame):
                    self._drop(oldest, "DROP_OLDEST strategy")

    def _drop(self, frame: VideoFrame, cause: str) -> None:
        self.frames_dropped += 1
        self._emit("FRAME_DROPPED", UpdateSeverity.DEBUG, frame_id=frame.frame_id, cause=cause)

    def _finish(self, error: BaseException | None) -> None:
        marker = _EndOfStream(error)
        while True:
            try:
                self._buffer.put(marker, timeout=_POLL)
                return
            except queue.Full:
                if self._stop.is_set():
                    self._purge()

    def _purge(self) -> None:
        while True:
            try:
                item = self._buffer.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _EndOfStream):  # keep the end marker for the consumer
                with contextlib.suppress(queue.Full):
                    self._buffer.put_nowait(item)
                return
