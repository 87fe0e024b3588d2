"""Browser-playable H.264 MP4 files written with PyAV.

Example:
    >>> import numpy as np
    >>> from framepipe.sinks.video_file import H264Writer
    >>> with H264Writer("/tmp/black.mp4", fps=30) as writer:  # doctest: +SKIP
    ...     for _ in range(30):
    ...         writer.write(np.zeros((360, 640, 3), np.uint8))
"""

from __future__ import annotations

import os
import threading
from fractions import Fraction
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import av.container
    import av.video.stream


class H264Writer:
    """Encodes BGR frames into an H.264 (yuv420p) MP4 with the index at the front (``+faststart``).

    The size is taken from the first frame; later frames of another size are resized to it. Odd
    sizes are padded to even ones by repeating the last row or column, since yuv420p needs even
    sizes. ``close()`` (or leaving the ``with`` block) flushes the encoder and writes the index; a
    file is only complete once closed. ``frames_written`` counts the frames encoded so far.
    Thread-safe: ``write`` and ``close`` may come from different threads.
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

    def _open(self, width: int, height: int) -> None:
        import av

        container = av.open(self.path, mode="w", options={"movflags": "+faststart"})
        try:
            stream = container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(self.crf), "preset": self.preset}
        except Exception:
            container.close()
            raise
        self._container, self._stream, self._size = container, stream, (width, height)

    def write(self, image: np.ndarray) -> None:
        """Encode one BGR ``uint8`` frame of shape ``(H, W, 3)``."""
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
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
            frame.pts = self.frames_written
            frame.time_base = Fraction(1) / Fraction(self.fps).limit_denominator(1001)
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
    """Pad by one row/column for odd sizes, resize for anything else."""
    import cv2

    h, w = image.shape[:2]
    if (width - w, height - h) in {(0, 1), (1, 0), (1, 1)}:
        return cv2.copyMakeBorder(image, 0, height - h, 0, width - w, cv2.BORDER_REPLICATE)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
