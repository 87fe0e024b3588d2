"""A video source: one decoder thread feeding a bounded frame buffer, reconnecting when a stream
is lost.

The decoder thread owns its reader: it opens it (after ``start()`` opened the first one, so that
a missing file or a file that is not video raises there), reads it, and closes it. Files default
to every frame (``WAIT`` + ``LAZY``); live streams, webcams and files played in real time to the
freshest frame (``ADAPTIVE_DROP_OLDEST`` + ``EAGER``). A stream that ends or fails is retried with exponential
backoff and jitter, forever unless ``max_reconnect_attempts`` is set, and the source reports
``CONNECTED``, ``LOST``, ``RECONNECTING`` and ``END_OF_STREAM`` status updates with the reason.
A stream that cannot be reached when the pipeline starts is retried the same way (a stream that
refuses us for good, with 401 or 404, raises from ``start()`` instead).

Example:
    >>> from framepipe.sources import SourceOptions, VideoSource
    >>> source = VideoSource("rtsp://127.0.0.1:8554/live", options=SourceOptions(read_timeout=2))  # doctest: +SKIP
    >>> source.start()  # doctest: +SKIP
    >>> frame = source.read_frame()  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from framepipe._internal.env import env_int
from framepipe._internal.redact import redact_text
from framepipe.errors import (
    InvalidVideoError,
    PipelineStateError,
    SourceAccessError,
    SourceConnectionError,
    SourceError,
    StreamOperationNotAllowedError,
)
from framepipe.events import EventType
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
from framepipe.sources.readers import FrameReader, ReaderOptions, is_stream, open_reader, redact
from framepipe.sources.reconnect import Backoff

logger = logging.getLogger("framepipe.sources")

DEFAULT_BUFFER_SIZE = 2
"""Frames buffered per source. Roboflow buffers 64 (170 MB of 720p frames per source); 2 gives
the same throughput on files (measured against 4 and 8: the decoder is far ahead of inference)
and keeps memory and file latency low. ``VIDEO_SOURCE_BUFFER_SIZE`` overrides it, as in Roboflow
(read when a source is built, not at import)."""


def default_buffer_size() -> int:
    """``VIDEO_SOURCE_BUFFER_SIZE`` from the environment, else ``DEFAULT_BUFFER_SIZE``."""
    return env_int("VIDEO_SOURCE_BUFFER_SIZE", DEFAULT_BUFFER_SIZE)


MUTED_CAUSE = "Buffering not allowed at the moment"


@dataclass
class SourceOptions:
    """framepipe's settings of a source, beyond Roboflow's.

    ``realtime``: play a file at its own frame rate instead of as fast as possible (a file then
    stands in for a camera). ``rtsp_transport``, ``decoder_threads``, ``open_timeout``,
    ``read_timeout`` and ``backend``: see ``ReaderOptions``. ``reconnect_first_delay`` and
    ``reconnect_max_delay``: the backoff of reconnections (seconds); ``max_reconnect_attempts``:
    tries after a loss before giving up (``None``: forever). ``loop``: start a file again when it
    ends (``frame_id`` keeps counting), for soak tests and demos.
    """

    realtime: bool = False
    rtsp_transport: str = "tcp"
    decoder_threads: int = 0
    open_timeout: float = 10.0
    read_timeout: float = 5.0
    backend: str = "auto"
    reconnect_first_delay: float = 0.25
    reconnect_max_delay: float = 2.0
    max_reconnect_attempts: int | None = None
    loop: bool = False

    def reader_options(self) -> ReaderOptions:
        return ReaderOptions(
            self.rtsp_transport, self.decoder_threads, self.open_timeout, self.read_timeout, self.backend
        )


class VideoSource:
    """Decodes one video reference on its own thread into a bounded buffer.

    ``read_frame`` returns the next frame, or ``None`` once the source has ended for good
    (``error`` then holds what ended it, if anything). Counters: ``frames_decoded``,
    ``frames_dropped``, ``corrupt_packets``, ``reconnections``.
    """

    def __init__(
        self,
        video_reference: str | int,
        source_id: int = 0,
        buffer_size: int | None = None,
        buffer_filling_strategy: BufferFillingStrategy | str | None = None,
        buffer_consumption_strategy: BufferConsumptionStrategy | str | None = None,
        status_update_handlers: Sequence[Callable[[StatusUpdate], None]] = (),
        options: SourceOptions | None = None,
    ) -> None:
        buffer_size = default_buffer_size() if buffer_size is None else buffer_size
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be at least 1, got {buffer_size}")
        self.reference = video_reference
        self.source_id = source_id
        self.buffer_size = buffer_size
        self.options = options or SourceOptions()
        self._filling = BufferFillingStrategy(buffer_filling_strategy) if buffer_filling_strategy else None
        self._consumption = (
            BufferConsumptionStrategy(buffer_consumption_strategy) if buffer_consumption_strategy else None
        )
        self._handlers = list(status_update_handlers)
        self._listeners: list[Callable[[], None]] = []
        self._buffer: FrameBuffer | None = None
        self._stop = threading.Event()
        self._resumed = threading.Event()
        self._resumed.set()
        self._state_lock = threading.Lock()
        self._state = StreamState.NOT_STARTED
        self._thread: threading.Thread | None = None
        self._reader: FrameReader | None = None
        self._backoff = Backoff(
            self.options.reconnect_first_delay, self.options.reconnect_max_delay, self.options.max_reconnect_attempts
        )
        self._decode_times: deque[float] = deque(maxlen=30)
        self._muted_drops = 0
        self._corrupt_before = 0
        self._first_failure: BaseException | None = None
        self.error: BaseException | None = None
        self.properties: SourceProperties | None = None
        self.frames_decoded = 0
        self.reconnections = 0

    # -- state ------------------------------------------------------------------------------------
    @property
    def state(self) -> StreamState:
        return self._state

    def _set_state(self, state: StreamState) -> None:
        with self._state_lock:
            previous, self._state = self._state, state
        if previous is not state:
            self._emit(EventType.SOURCE_STATE_UPDATE, UpdateSeverity.INFO, previous_state=previous, new_state=state)

    def is_producing(self) -> bool:
        """Connected and delivering frames: not starting, reconnecting, paused, muted or ended."""
        return self._state is StreamState.RUNNING

    @property
    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def frames_dropped(self) -> int:
        return (self._buffer.dropped if self._buffer is not None else 0) + self._muted_drops

    @property
    def corrupt_packets(self) -> int:
        return self._corrupt_before + (self._reader.corrupt_packets if self._reader is not None else 0)

    @property
    def buffer_filling_strategy(self) -> BufferFillingStrategy | None:
        return self._filling

    @property
    def buffer_consumption_strategy(self) -> BufferConsumptionStrategy | None:
        return self._consumption

    def describe_source(self) -> SourceMetadata:
        return SourceMetadata(
            source_properties=self.properties,
            source_reference=redact(self.reference),
            buffer_size=self.buffer_size,
            state=self._state,
            buffer_filling_strategy=self._filling,
            buffer_consumption_strategy=self._consumption,
            source_id=self.source_id,
        )

    def add_status_handler(self, handler: Callable[[StatusUpdate], None]) -> None:
        """Also send this source's status updates to ``handler``."""
        self._handlers.append(handler)

    def add_frame_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (from the decoder thread) whenever a frame is buffered, and once
        when the source ends."""
        self._listeners.append(listener)

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Open the source and start decoding.

        Files and webcams raise here (``SourceNotFoundError``, ``InvalidVideoError``,
        ``SourceConnectionError``); a stream raises only when it refuses us for good
        (``SourceAccessError``: 401, 403, 404; ``InvalidVideoError``): an unreachable one is
        retried in the background, with status updates.
        """
        if self._thread is not None:
            raise PipelineStateError(f"source {self.source_id} was already started")
        self._set_state(StreamState.INITIALISING)
        live = is_stream(self.reference) or isinstance(self.reference, int) or self.options.realtime
        try:
            reader: FrameReader | None = open_reader(self.reference, self.options.reader_options())
        except SourceConnectionError as error:
            if not is_stream(self.reference) or isinstance(error, SourceAccessError):
                self._set_state(StreamState.ERROR)
                raise
            logger.warning(
                "source %s (%s) is not reachable yet: %s; retrying", self.source_id, redact(self.reference), error
            )
            reader, self._first_failure = None, error
        except SourceError:
            self._set_state(StreamState.ERROR)
            raise
        if reader is not None:
            live = not reader.properties.is_file or self.options.realtime  # a paced file stands in for a camera
            self._connected(reader)
        if self._filling is None:
            self._filling = BufferFillingStrategy.ADAPTIVE_DROP_OLDEST if live else BufferFillingStrategy.WAIT
        if self._consumption is None:
            self._consumption = BufferConsumptionStrategy.EAGER if live else BufferConsumptionStrategy.LAZY
        self._buffer = FrameBuffer(self.buffer_size, self._filling, self._consumption, self._on_drop)
        self._thread = threading.Thread(target=self._run, name=f"framepipe-decoder-{self.source_id}", daemon=True)
        self._thread.start()

    def terminate(self, wait: bool = True, timeout: float = 1.0) -> None:
        """Stop decoding and drop buffered frames; with ``wait`` join the decoder thread (a
        thread blocked on a stalled network read ends within ``read_timeout``)."""
        self._stop.set()
        self._resumed.set()
        if self._buffer is not None:
            self._buffer.close()
        if wait and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    # -- pause, mute, resume (Roboflow's semantics) -------------------------------------------------
    def pause(self) -> None:
        """Stop reading until ``resume()`` (a long pause may make a camera drop the connection,
        which is then re-established)."""
        self._transition({StreamState.RUNNING}, StreamState.PAUSED, "pause", self._resumed.clear)

    def mute(self) -> None:
        """Keep reading but drop every frame until ``resume()``."""
        self._transition({StreamState.RUNNING}, StreamState.MUTED, "mute")

    def resume(self) -> None:
        """Undo ``pause()`` or ``mute()``."""
        self._transition({StreamState.PAUSED, StreamState.MUTED}, StreamState.RUNNING, "resume", self._resumed.set)

    def _transition(
        self, allowed: set[StreamState], target: StreamState, action: str, effect: Callable[[], None] | None = None
    ) -> None:
        """Check, change the state and apply its ``effect`` under one lock, then tell the status
        handlers: a ``resume()`` while ``pause()``'s handlers run can no longer be undone by them."""
        with self._state_lock:
            if self._state not in allowed:
                raise StreamOperationNotAllowedError(
                    f"cannot {action} source {self.source_id}: it is {self._state.value}, "
                    f"{action} needs {' or '.join(sorted(s.value for s in allowed))}"
                )
            previous, self._state = self._state, target
            if effect is not None:
                effect()
        if previous is not target:
            self._emit(EventType.SOURCE_STATE_UPDATE, UpdateSeverity.INFO, previous_state=previous, new_state=target)

    # -- consumer side ----------------------------------------------------------------------------
    def read_frame(self, timeout: float | None = None) -> VideoFrame | None:
        """The next frame; ``None`` when the source has ended. Raises ``TimeoutError`` when no
        frame came within ``timeout`` seconds."""
        if self._buffer is None:
            raise PipelineStateError(f"source {self.source_id} was not started")
        frame: VideoFrame | None = self._buffer.get(timeout=timeout)
        return frame

    # -- decoder thread ---------------------------------------------------------------------------
    def _emit(self, event_type: str, severity: UpdateSeverity, **payload: Any) -> None:
        update = StatusUpdate(
            datetime.now(), severity, event_type, {"source_id": self.source_id, **payload}, "video_source"
        )
        for handler in self._handlers:
            try:
                handler(update)
            except Exception:  # a faulty handler must not stop decoding
                logger.warning("status update handler failed on %s", event_type, exc_info=True)

    def _on_drop(self, item: Any, cause: str) -> None:
        frame_id = item.frame_id if isinstance(item, VideoFrame) else self.frames_decoded
        self._emit(EventType.FRAME_DROPPED, UpdateSeverity.DEBUG, frame_id=frame_id, cause=cause)

    def _connected(self, reader: FrameReader) -> None:
        self._reader, self.properties = reader, reader.properties
        properties = reader.properties
        self._emit(
            EventType.CONNECTED,
            UpdateSeverity.INFO,
            reference=redact(self.reference),
            width=properties.width,
            height=properties.height,
            fps=properties.fps,
            is_file=properties.is_file,
            next_frame_id=self.frames_decoded + 1,
        )
        self._set_state(StreamState.RUNNING)

    def _release_reader(self) -> None:
        if self._reader is not None:
            self._corrupt_before += self._reader.corrupt_packets
            self._reader.close()
            self._reader = None

    def _run(self) -> None:
        assert self._buffer is not None
        self._emit(EventType.VIDEO_CONSUMPTION_STARTED, UpdateSeverity.INFO)
        reason = "terminated"
        try:
            while not self._stop.is_set():
                if self._reader is None:
                    failure, self._first_failure = self._first_failure, None
                    if not self._reconnect(failure):
                        reason = f"gave up after {self._backoff.attempts} reconnection attempts"
                        break
                    continue
                outcome = self._decode(self._reader)
                properties = self._reader.properties
                self._release_reader()
                if self._stop.is_set():
                    break
                if properties.is_file and self.options.loop and outcome == "end of file":
                    self._emit(EventType.END_OF_STREAM, UpdateSeverity.DEBUG, reason="end of file, looping")
                    self._connected(open_reader(self.reference, self.options.reader_options()))
                    continue
                if properties.is_file or not is_stream(self.reference):
                    reason = outcome
                    break
                self._emit(EventType.LOST, UpdateSeverity.WARNING, reason=outcome)
                self._first_failure = SourceConnectionError(outcome)
        except Exception as error:  # reported to the consumer through end() and ``error``
            self.error = error
            reason = redact_text(f"{type(error).__name__}: {error}")
            logger.error("source %s (%s) failed: %s", self.source_id, redact(self.reference), redact_text(str(error)))
            self._emit(
                EventType.SOURCE_ERROR,
                UpdateSeverity.ERROR,
                error_type=type(error).__name__,
                error_message=redact_text(str(error)),
                error_context="stream_consumer_thread",
            )
        finally:
            self._release_reader()
            if self._stop.is_set():
                self._set_state(StreamState.TERMINATING)
            self._emit(EventType.END_OF_STREAM, UpdateSeverity.INFO, reason=reason)
            self._emit(EventType.VIDEO_CONSUMPTION_FINISHED, UpdateSeverity.INFO)
            self._set_state(StreamState.ERROR if self.error is not None else StreamState.ENDED)
            self._buffer.end()
            for listener in self._listeners:  # the consumer learns of the end as of a frame
                listener()

    def _reconnect(self, failure: BaseException | None) -> bool:
        """Wait out the backoff and open the stream again; ``False`` once attempts ran out."""
        self._set_state(StreamState.RESTARTING)
        reason = str(failure) if failure is not None else "not connected"
        while not self._stop.is_set():
            if self._backoff.exhausted:
                self.error = SourceConnectionError(f"{redact(self.reference)}: {reason}")
                return False
            delay = self._backoff.next_delay()
            self._emit(
                EventType.RECONNECTING, UpdateSeverity.INFO, attempt=self._backoff.attempts, delay=delay, reason=reason
            )
            if self._stop.wait(delay):
                return True
            try:
                reader = open_reader(self.reference, self.options.reader_options())
            except (SourceConnectionError, InvalidVideoError) as error:
                reason = str(error)
                logger.info(
                    "source %s: reconnection attempt %d failed: %s", self.source_id, self._backoff.attempts, error
                )
                continue
            self.reconnections += 1
            self._backoff.reset()
            self._connected(reader)
            return True
        return True

    def _decode(self, reader: FrameReader) -> str:
        """Read ``reader`` until it ends, fails or the source stops; returns why it ended."""
        assert self._buffer is not None
        properties = reader.properties
        pace_start: tuple[float, float] | None = None
        count = 0
        try:
            for decoded in reader.frames():
                if self._stop.is_set():
                    return "terminated"
                if not self._resumed.is_set():
                    self._resumed.wait()
                    if self._stop.is_set():
                        return "terminated"
                    pace_start = None  # a paused file resumes from where it is, at its own pace
                self.frames_decoded += 1
                count += 1
                now = time.monotonic()
                self._decode_times.append(now)
                if self.options.realtime and properties.is_file:
                    position = decoded.pts if decoded.pts is not None else count / (properties.fps or 30.0)
                    if pace_start is None:
                        pace_start = (now, position)
                    wait = pace_start[0] + (position - pace_start[1]) - now
                    if wait > 0 and self._stop.wait(wait):
                        return "terminated"
                if self._state is StreamState.MUTED:
                    self._muted_drops += 1
                    self._emit(
                        EventType.FRAME_DROPPED, UpdateSeverity.DEBUG, frame_id=self.frames_decoded, cause=MUTED_CAUSE
                    )
                    continue
                if self._buffer.should_skip():
                    continue
                image = decoded.to_bgr()
                if image.shape[:2] != (properties.height, properties.width):
                    properties = self._resized(properties, image)
                frame = VideoFrame(
                    image=image,
                    frame_id=self.frames_decoded,
                    frame_timestamp=datetime.now(),
                    fps=properties.fps or None,
                    measured_fps=self._measured_fps(properties),
                    source_id=self.source_id,
                    comes_from_video_file=properties.is_file,
                    presentation_time=decoded.pts,
                )
                if self._buffer.put(frame, self._stop):
                    for listener in self._listeners:
                        listener()
        except SourceConnectionError as error:
            return str(error)
        if self._stop.is_set():
            return "terminated"
        if properties.is_file and properties.total_frames and count < properties.total_frames:
            corrupt = reader.corrupt_packets
            return f"the file ended after {count} of its {properties.total_frames} frames (truncated or damaged" + (
                f"; {corrupt} corrupt packets skipped)" if corrupt else ")"
            )
        return "end of file" if properties.is_file else "the stream ended"

    def _resized(self, properties: SourceProperties, image: Any) -> SourceProperties:
        """The stream changed resolution mid-way: ``properties`` follow it."""
        height, width = image.shape[:2]
        logger.info(
            "source %s: resolution changed from %dx%d to %dx%d",
            self.source_id,
            properties.width,
            properties.height,
            width,
            height,
        )
        self.properties = dataclasses.replace(properties, width=width, height=height)
        return self.properties

    def _measured_fps(self, properties: SourceProperties) -> float | None:
        if properties.is_file and not self.options.realtime:
            return properties.fps or None  # decoded as fast as possible: the pace says nothing
        times = self._decode_times
        if len(times) < 2 or times[-1] <= times[0]:
            return properties.fps or None
        return (len(times) - 1) / (times[-1] - times[0])
