"""The small standard-library HTTP servers framepipe runs inside a pipeline (the metrics endpoint,
the MJPEG preview): one base with timeouts and a connection cap, so that silent or slow clients
cannot pile up threads and sockets.

- every connection has a socket timeout (``timeout_s``): a client that sends nothing, or stops
  reading a stream, is dropped after that long;
- at most ``max_connections`` are served at once; more are closed at once;
- broken connections end quietly; the request log goes to DEBUG.

Example:
    >>> from framepipe._internal.http import QuietHandler, SmallHTTPServer
    >>> class Hello(QuietHandler):
    ...     def do_GET(self) -> None:
    ...         self.send_body(200, "text/plain", b"hello\\n")
    >>> server = SmallHTTPServer(Hello, port=0, name="hello").start()
    >>> import urllib.request
    >>> urllib.request.urlopen(server.url + "/").read()
    b'hello\\n'
    >>> server.stop()
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger("framepipe.http")


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler whose log goes to DEBUG and whose broken connections end quietly."""

    server_version = "framepipe"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(getattr(self.server, "timeout_s", 10.0))  # this connection's timeout

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
            self.close_connection = True  # the client went away or stayed silent too long

    def send_body(self, status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        """Answer ``status`` with ``body`` (``Content-Length`` set; no body for ``HEAD``)."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", type(self).__name__, format % args)


class SmallHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server on ``host:port`` (``port=0``: a free one) serving ``handler``, with a
    per-connection timeout and a cap on connections served at once; ``start()`` serves on a
    background thread, ``stop()`` ends it (safe to call twice)."""

    daemon_threads = True

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        name: str = "framepipe-http",
        timeout_s: float = 10.0,
        max_connections: int = 32,
    ) -> None:
        super().__init__((host, port), handler)
        self.timeout_s = timeout_s
        self.name = name
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._thread: threading.Thread | None = None
        address = self.server_address
        self.host, self.port = str(address[0]), int(address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            logger.debug("%s: %d connections already; closing a new one", self.name, self.max_connections)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def start(self) -> SmallHTTPServer:
        self._thread = threading.Thread(target=self.serve_forever, args=(0.1,), name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None and self._thread.is_alive():
            self.shutdown()
            self._thread.join(2.0)
        self.server_close()


__all__ = ["QuietHandler", "SmallHTTPServer"]
