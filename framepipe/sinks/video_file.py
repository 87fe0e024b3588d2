"""Browser-playable H.264 MP4 files: ``H264Writer`` (frames in, a file out) and ``VideoFileSink``
(a sink that draws predictions and writes them, Roboflow's signature).

Files are H.264, yuv420p, with the index at the front (``+faststart``), so they play in a browser
while still being downloaded. Frames keep their timing: a writer given timestamps places each
frame at its time (a live stream with dropped frames plays at the right speed). A file is
complete once closed; ``VideoFileSink`` closes its files in ``release()``, when the pipeline it
was given to ends, and, as a last resort, when it is garbage-collected or the interpreter exits.

Example:
    >>> import numpy as np
    >>> from framepipe.sinks.video_file import H264Writer
    >>> with H264Writer("/tmp/black.mp4", fps=30) as writer:  # doctest: +SKIP
    ...     for _ in range(30):
    ...         writer.write(np.zeros((360, 640, 3), np.uint8))
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from framepipe.sources.entities import VideoFrame

if TYPE_CHECKING:
    import av.container
    import av.video.stream

logger = logging.getLogger("framepipe.sinks")

_FINE_TIME_BASE = Fraction(1, 90000)


class H264Writer:
    """Encodes BGR frames into an H.264 (yuv420p) MP4 with ``+faststart``.

    The size is taken from the first frame; later frames of another size are resized to it. Odd
    sizes are padded to even ones by repeating the last row or column, since yuv420p needs even
    sizes. Frames are spaced ``1 / fps`` apart unless ``write`` is given their timestamps (seconds,
    any origin), which then set their times in the file. ``close()`` (or leaving the ``with``
    block) flushes the encoder and writes the index. ``frames_written`` counts the frames encoded.
    Thread-safe.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float = 30.0,
        crf: int = 23,
        preset: str = "veryfast",
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = os.fspath(path)
        self.fps = fps
        self.crf = crf
        self.preset = preset
        self.frames_written = 0
        self._size: tuple[int, int] | None = None
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._first_time: float | None = None
        self._last_pts = -1

    @property
    def closed(self) -> bool:
        return self._closed

    def _open(self, width: int, height: int) -> None:
        import av

        container = av.open(self.path, mode="w", options={"movflags": "+faststart"})
        try:
            stream = container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(self.crf), "preset": self.preset}
            stream.codec_context.time_base = _FINE_TIME_BASE
            stream.time_base = _FINE_TIME_BASE
        except Exception:
            container.close()
            raise
        self._container, self._stream, self._size = container, stream, (width, height)

    def write(self, image: np.ndarray, timestamp: float | None = None) -> None:
        """Encode one BGR ``uint8`` frame of shape ``(H, W, 3)``, at ``timestamp`` seconds when given."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected a BGR uint8 image of shape (H, W, 3), got {image.dtype} {image.shape}")
        import av

        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.path} is already closed")
            height, width = image.shape[:2]
            if self._size is None:
                self._open(width + width % 2, height + height % 2)
            assert self._size is not None and self._stream is not None and self._container is not None
            target_w, target_h = self._size
            if (width, height) != (target_w, target_h):
                image = _fit(image, target_w, target_h)
            if timestamp is not None:
                if self._first_time is None:
                    self._first_time = timestamp
                pts = round((timestamp - self._first_time) * _FINE_TIME_BASE.denominator)
            else:
                pts = round(self.frames_written * _FINE_TIME_BASE.denominator / self.fps)
            pts = max(pts, self._last_pts + 1)  # strictly increasing, whatever the timestamps say
            self._last_pts = pts
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
            frame.pts = pts
            frame.time_base = _FINE_TIME_BASE
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
            self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and finish the file. Safe to call more than once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._container is None or self._stream is None:
                return
            try:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
            finally:
                self._container.close()

    def __enter__(self) -> H264Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pad by one row/column for odd sizes, letterbox for anything else."""
    import cv2

    from framepipe.models.preprocess import letterbox

    h, w = image.shape[:2]
    if (width - w, height - h) in {(0, 1), (1, 0), (1, 1)}:
        return cv2.copyMakeBorder(image, 0, height - h, 0, width - w, cv2.BORDER_REPLICATE)
    return letterbox(image, width, height, (0, 0, 0))[0]


def _close_all(writers: dict[Any, H264Writer]) -> None:
    for writer in list(writers.values()):
        try:
            writer.close()
        except Exception:  # at exit: nothing more can be done than to say so
            logger.exception("could not finish %s", writer.path)


class VideoFileSink:
    """Writes annotated frames to H.264 MP4: one tiled file for several sources, or one file per
    source with ``per_source=True`` (``name_<source_id>.mp4``).

    Build it with Roboflow's ``VideoFileSink.init(...)`` and pass ``sink.on_prediction`` (or the
    sink itself) as ``on_prediction``. ``output_fps`` defaults to the source's rate and frames
    keep their timing (from the stream's presentation times); ``video_frame_size`` (width,
    height) letterboxes every frame to one size, by default the first frame's. ``release()``
    finishes the files; the pipeline calls it when it ends.

    Example:
        >>> from framepipe import InferencePipeline
        >>> from framepipe.sinks import VideoFileSink
        >>> sink = VideoFileSink.init("annotated.mp4")  # doctest: +SKIP
        >>> pipeline = InferencePipeline.init(video_reference="clip.mp4", model_id="framepipe-shapes/1",
        ...                                   on_prediction=sink.on_prediction)  # doctest: +SKIP
        >>> pipeline.start(); pipeline.join()  # doctest: +SKIP
    """

    def __init__(
        self,
        video_file_name: str | os.PathLike[str],
        annotator: Any = None,
        display_statistics: bool = False,
        fps_monitor: Any = None,
        output_fps: float | None = None,
        video_frame_size: tuple[int, int] | None = None,
        per_source: bool = False,
        quiet: bool = True,
        crf: int = 23,
    ) -> None:
        self.video_file_name = os.fspath(video_file_name)
        self.annotator = annotator
        self.display_statistics = display_statistics
        self.fps_monitor = fps_monitor
        self.output_fps = output_fps
        self.video_frame_size = video_frame_size
        self.per_source = per_source
        self.quiet = quiet
        self.crf = crf
        self._writers: dict[Any, H264Writer] = {}
        self._lock = threading.Lock()
        self._released = False
        self._clocks: dict[Any, _Clock] = {}
        self._finalizer = weakref.finalize(self, _close_all, self._writers)

    @classmethod
    def init(
        cls,
        video_file_name: str | os.PathLike[str],
        annotator: Any = None,
        display_size: tuple[int, int] | None = None,
        fps_monitor: Any = None,
        display_statistics: bool = False,
        output_fps: float | None = None,
        quiet: bool = True,
        video_frame_size: tuple[int, int] | None = None,
        *,
        per_source: bool = False,
        crf: int = 23,
    ) -> VideoFileSink:
        """Roboflow's constructor. ``display_size`` is accepted and means the same as
        ``video_frame_size`` when that is not given (Roboflow letterboxes to both)."""
        return cls(
            video_file_name,
            annotator=annotator,
            display_statistics=display_statistics,
            fps_monitor=fps_monitor,
            output_fps=output_fps,
            video_frame_size=video_frame_size or display_size,
            per_source=per_source,
            quiet=quiet,
            crf=crf,
        )

    @property
    def frames_written(self) -> int:
        """Frames written, over all files."""
        with self._lock:
            return sum(w.frames_written for w in self._writers.values())

    @property
    def paths(self) -> list[str]:
        """The files written so far."""
        with self._lock:
            return [w.path for w in self._writers.values()]

    def _path_for(self, source_id: int | None) -> str:
        if not self.per_source:
            return self.video_file_name
        path = Path(self.video_file_name)
        return str(path.with_name(f"{path.stem}_{source_id if source_id is not None else 0}{path.suffix}"))

    def _writer(self, key: Any, source_id: int | None, fps: float | None) -> H264Writer:
        writer = self._writers.get(key)
        if writer is None:
            writer = self._writers[key] = H264Writer(
                self._path_for(source_id), fps=self.output_fps or fps or 30.0, crf=self.crf
            )
            self._clocks[key] = _Clock(1.0 / writer.fps)
        return writer

    def _write(self, key: Any, frame: VideoFrame, image: np.ndarray) -> None:
        writer = self._writer(key, frame.source_id, frame.fps)
        writer.write(image, self._clocks[key].time(_timestamp(frame)))

    def on_prediction(
        self,
        predictions: dict[str, Any] | list[dict[str, Any] | None] | None,
        video_frame: VideoFrame | list[VideoFrame | None] | None,
    ) -> None:
        """Draw the predictions on their frames and write them."""
        from framepipe.sinks.render import create_tiles, render_boxes

        rendered: list[Any] = []
        render_boxes(
            predictions,
            video_frame,
            annotator=self.annotator,
            display_size=self.video_frame_size,
            fps_monitor=self.fps_monitor,
            display_statistics=self.display_statistics,
            on_frame_rendered=rendered.append,
        )
        frames = video_frame if isinstance(video_frame, list) else [video_frame]
        present = [f for f in frames if f is not None]
        if not present:
            return
        with self._lock:
            if self._released:
                raise RuntimeError(f"{self.video_file_name}: the sink was released")
            if isinstance(video_frame, list) and not self.per_source:
                first = present[0]
                self._writer("tiles", None, first.fps)
                self._write("tiles", first, create_tiles([image for _, image in rendered[0]]))
            elif isinstance(video_frame, list):
                for (_, image), frame in zip(rendered[0], frames, strict=True):
                    if frame is not None:
                        self._write(frame.source_id, frame, image)
            else:
                frame = present[0]
                self._write(frame.source_id if self.per_source else "single", frame, rendered[0][1])
        if not self.quiet:
            logger.info("written frame %d to %s", self.frames_written, self.video_file_name)

    __call__ = on_prediction

    def release(self) -> None:
        """Finish every file. Safe to call more than once."""
        with self._lock:
            self._released = True
            _close_all(self._writers)

    def __enter__(self) -> VideoFileSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


class _Clock:
    """A file's time from its frames' times: where those go back (a looping file starts again, a
    stream restarts), the file's time goes on one frame later instead."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.offset = 0.0
        self.last: float | None = None

    def time(self, timestamp: float) -> float:
        value = timestamp + self.offset
        if self.last is not None and value <= self.last:
            self.offset += self.last + self.step - value
            value = self.last + self.step
        self.last = value
        return value


def _timestamp(frame: VideoFrame) -> float:
    """The frame's time for the file: a file's own presentation time, else (live sources, whose
    stream time restarts when they reconnect) the wall clock at capture."""
    if frame.comes_from_video_file and frame.presentation_time is not None:
        return frame.presentation_time
    return frame.frame_timestamp.timestamp()
