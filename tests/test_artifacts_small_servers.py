"""Issue 14: the two small standard-library servers that stay in the library (the pipeline's
metrics endpoint and the MJPEG preview) share ``framepipe._internal.http``: silent connections
are closed after a timeout and the number served at once is capped, so idle sockets cannot
starve them."""

from __future__ import annotations

import socket
import time
import urllib.request

from framepipe._internal.http import QuietHandler, SmallHTTPServer
from framepipe.pipeline.metrics_server import MetricsServer
from framepipe.sinks.mjpeg_preview import MJPEGPreviewSink


def _closed_within(connections: list[socket.socket], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    for connection in connections:
        connection.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            if connection.recv(1) != b"":
                return False
        except TimeoutError:
            return False
        except ConnectionResetError:
            pass
    return True


def test_metrics_server_closes_silent_connections_and_keeps_answering() -> None:
    server = MetricsServer(lambda: "frames_total 3\n", lambda: (True, {}), port=0, timeout_s=0.5)
    server.start()
    try:
        silent = [socket.create_connection((server.host, server.port), timeout=5) for _ in range(8)]
        silent[0].sendall(b"GET /metrics HTTP/1.1\r\n")  # a request line whose headers never end
        assert _closed_within(silent, 5.0)
        assert b"frames_total 3" in urllib.request.urlopen(f"{server.url}/metrics", timeout=5).read()
        for connection in silent:
            connection.close()
    finally:
        server.stop()


def test_mjpeg_preview_drops_silent_viewers() -> None:
    preview = MJPEGPreviewSink(port=0, timeout_s=0.5)
    try:
        silent = [socket.create_connection((preview.host, preview.port), timeout=5) for _ in range(4)]
        assert _closed_within(silent, 5.0)
        page = urllib.request.urlopen(preview.url, timeout=5).read()
        assert b"stream.mjpg" in page
        for connection in silent:
            connection.close()
    finally:
        preview.release()


def test_connections_beyond_the_cap_are_closed_at_once() -> None:
    class Hello(QuietHandler):
        def do_GET(self) -> None:
            self.send_body(200, "text/plain", b"hello\n")

    server = SmallHTTPServer(Hello, port=0, timeout_s=1.0, max_connections=2).start()
    try:
        held = [socket.create_connection((server.host, server.port), timeout=5) for _ in range(2)]
        # the two silent ones hold both slots until their timeout
        extra = socket.create_connection((server.host, server.port), timeout=5)
        extra.sendall(b"GET / HTTP/1.0\r\n\r\n")
        began = time.monotonic()
        try:
            answer = extra.recv(100)
        except ConnectionResetError:
            answer = b""
        assert answer == b"" and time.monotonic() - began < 0.9  # refused, not queued behind them
        assert _closed_within(held, 5.0)
        assert urllib.request.urlopen(server.url + "/", timeout=5).read() == b"hello\n"  # slots free again
    finally:
        server.stop()
