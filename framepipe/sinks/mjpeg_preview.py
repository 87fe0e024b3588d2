"""``MJPEGPreviewSink``: watch a headless pipeline in a browser.

A small HTTP server (on 127.0.0.1 unless told otherwise) serves a page at ``/``, the annotated
frames as a multipart MJPEG stream at ``/stream.mjpg`` and the latest one at ``/frame.jpg``.
The sink only keeps the latest JPEG; every client has its own thread and gets the newest frame
whenever it is ready for one, so a slow client skips frames and never slows the pipeline, and
frames are encoded only while someone watches.

Example:
    >>> from framepipe.sinks import MJPEGPreviewSink
    >>> preview = MJPEGPreviewSink(port=8080)  # doctest: +SKIP
    >>> # InferencePipeline.init(..., on_prediction=preview); open http://127.0.0.1:8080/
"""

from __future__ import annotations

import html
import logging
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

import cv2

from framepipe._internal.http import QuietHandler, SmallHTTPServer
from framepipe.sources.entities import VideoFrame

logger = logging.getLogger("framepipe.sinks")

_BOUNDARY = "framepipe-frame"


class MJPEGPreviewSink:
    """A sink that renders predictions (``render_boxes``) and serves them as MJPEG over HTTP.

    ``port=0`` picks a free port (see ``url``); ``display_size`` (width, height) letterboxes the
    frames (``None`` keeps their size); ``quality`` is the JPEG quality; a viewer that sends
    nothing, or stops reading the stream, for ``timeout_s`` is dropped.
    """

    def __init__(
        self,
        port: int = 8080,
        host: str = "127.0.0.1",
        annotator: Any = None,
        display_size: tuple[int, int] | None = None,
        display_statistics: bool = False,
        quality: int = 80,
        title: str = "framepipe preview",
        timeout_s: float = 10.0,
    ) -> None:
        self.annotator = annotator
        self.display_size = display_size
        self.display_statistics = display_statistics
        self.quality = quality
        self.title = title
        self._condition = threading.Condition()
        self._jpeg: bytes | None = None
        self._sequence = 0
        self._clients = 0
        self._closed = False
        self.frames_encoded = 0
        owner = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/":
                    page = (
                        f"<!doctype html><title>{html.escape(owner.title)}</title>"
                        f"<body style='margin:0;background:#111'><img src='/stream.mjpg' "
                        "style='max-width:100%;display:block;margin:auto'></body>"
                    ).encode()
                    self._send(200, "text/html; charset=utf-8", page)
                elif path == "/frame.jpg":
                    jpeg = owner._next_frame(timeout=5.0)
                    if jpeg is None:
                        self._send(503, "text/plain", b"no frame yet\n")
                    else:
                        self._send(200, "image/jpeg", jpeg)
                elif path == "/stream.mjpg":
                    owner._stream_to(self)
                else:
                    self._send(404, "text/plain", b"not found: try /, /stream.mjpg or /frame.jpg\n")

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_body(status, content_type, body, {"Cache-Control": "no-store"})

        # silent clients, and viewers that stop reading the stream, are dropped after timeout_s
        self._server = SmallHTTPServer(Handler, host, port, name="framepipe-preview", timeout_s=timeout_s)
        self.host, self.port = self._server.host, self._server.port
        self._server.start()
        logger.info("preview at %s", self.url)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def clients(self) -> int:
        with self._condition:
            return self._clients

    def _wait_for_frame(self, after: int, timeout: float) -> tuple[int, bytes] | None:
        with self._condition:
            self._condition.wait_for(lambda: self._sequence > after or self._closed, timeout)
            if self._jpeg is None or self._sequence <= after:
                return None
            return self._sequence, self._jpeg

    def _next_frame(self, timeout: float) -> bytes | None:
        """The next frame the pipeline renders (the latest one if none comes in time)."""
        with self._condition:
            self._clients += 1
            current = self._sequence
        try:
            latest = self._wait_for_frame(current, timeout)
        finally:
            with self._condition:
                self._clients -= 1
        return latest[1] if latest is not None else self._jpeg

    def _stream_to(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
        handler.send_header("Cache-Control", "no-store")
        handler.end_headers()
        with self._condition:
            self._clients += 1
        seen = 0
        try:
            while not self._closed:
                latest = self._wait_for_frame(seen, timeout=1.0)
                if latest is None:
                    continue
                seen, jpeg = latest
                header = f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                handler.wfile.write(header.encode() + jpeg + b"\r\n")
                handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the client went away
        finally:
            with self._condition:
                self._clients -= 1

    def on_prediction(
        self,
        predictions: dict[str, Any] | list[dict[str, Any] | None] | None,
        video_frame: VideoFrame | list[VideoFrame | None] | None,
    ) -> None:
        """Render and publish the frame (tiles for several sources); nothing is done while no
        client watches."""
        if self._clients == 0:
            return
        from framepipe.sinks.render import create_tiles, render_boxes

        rendered: list[Any] = []
        render_boxes(
            predictions,
            video_frame,
            annotator=self.annotator,
            display_size=self.display_size,
            fps_monitor=None,
            display_statistics=self.display_statistics,
            on_frame_rendered=rendered.append,
        )
        item = rendered[0]
        image = create_tiles([img for _, img in item]) if isinstance(item, list) else item[1]
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            return
        with self._condition:
            self._jpeg = encoded.tobytes()
            self._sequence += 1
            self.frames_encoded += 1
            self._condition.notify_all()

    __call__ = on_prediction

    def release(self) -> None:
        """Stop serving and close the socket. Safe to call more than once."""
        with self._condition:
            if self._closed:
                return
            self._closed = True
            self._condition.notify_all()
        self._server.stop()
