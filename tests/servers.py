"""Real servers on 127.0.0.1 for the source tests: GStreamer's RTSP server (a subprocess), an
HTTP server for files and HLS, an MJPEG-over-HTTP stream, and a TCP server that accepts and then
says nothing."""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

RTSP_SCRIPT = Path(__file__).resolve().parent / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's Python, which has GStreamer's bindings (python3-gi)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RtspServer:
    """GStreamer's RTSP server playing ``video`` at ``rtsp://127.0.0.1:PORT/live``; every client
    gets the file from its start, at its own frame rate. ``kill()`` and ``start()`` again to
    simulate a camera that goes away and comes back; ``freeze()`` / ``thaw()`` for one that
    stops sending while keeping the connection."""

    def __init__(
        self, video: str | Path, port: int | None = None, user: str | None = None, password: str | None = None
    ):
        self.video = str(video)
        self.port = port or free_port()
        self.user, self.password = user, password
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/live"

    def start(self, timeout: float = 20.0) -> float:
        """Start it and wait until it listens; returns the ``time.monotonic()`` when it was ready."""
        command = [SYSTEM_PYTHON, str(RTSP_SCRIPT), "--file", self.video, "--port", str(self.port)]
        if self.user:
            command += ["--user", self.user, "--password", self.password or ""]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line.strip() == "READY":
                return time.monotonic()
            if not line and self.process.poll() is not None:
                break
        stderr = self.process.stderr.read() if self.process.stderr else ""
        self.kill()
        raise RuntimeError(f"the RTSP server did not start: {line!r} {stderr[-2000:]}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def freeze(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)


@contextmanager
def rtsp_server(video: str | Path, **kwargs: object) -> Iterator[RtspServer]:
    server = RtspServer(video, **kwargs)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.thaw()
        server.kill()


@contextmanager
def http_folder(folder: str | Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP; yields the base URL (missing files answer 404)."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def mjpeg_stream(frames: int = 90, size: tuple[int, int] = (160, 120), fps: float = 30.0) -> Iterator[str]:
    """A multipart MJPEG stream (as IP cameras serve) of ``frames`` grey frames, then the end."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            width, height = size
            for index in range(frames):
                image = np.full((height, width, 3), (index * 3) % 256, np.uint8)
                cv2.putText(image, str(index), (10, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
                _, jpeg = cv2.imencode(".jpg", image)
                try:
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg))
                    self.wfile.write(jpeg.tobytes() + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    return
                time.sleep(1 / fps)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/video.mjpg"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never sends a byte; yields its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
                accepted.append(connection)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(2)
        for connection in accepted:
            connection.close()
        listener.close()
