"""A small HTTP endpoint for a running pipeline: ``/metrics`` (Prometheus text) and ``/healthz``.

``/healthz`` answers 200 with ``{"status": "ok", ...}`` while at least one source is up and the
pipeline runs, and 503 with ``"unhealthy"`` otherwise. It listens on 127.0.0.1 unless told
otherwise.

Example:
    >>> from framepipe import InferencePipeline
    >>> pipeline = InferencePipeline.init(..., metrics_port=9090)  # doctest: +SKIP
    >>> # curl http://127.0.0.1:9090/metrics
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger("framepipe.pipeline")

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class MetricsServer:
    """Serves ``metrics_text()`` at ``/metrics`` and ``health()`` (healthy, details) at ``/healthz``."""

    def __init__(
        self,
        metrics_text: Callable[[], str],
        health: Callable[[], tuple[bool, dict[str, Any]]],
        port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, owner._metrics_text().encode("utf-8"), PROMETHEUS_CONTENT_TYPE)
                elif path == "/healthz":
                    healthy, details = owner._health()
                    body = json.dumps({"status": "ok" if healthy else "unhealthy", **details}).encode("utf-8")
                    self._send(200 if healthy else 503, body, "application/json")
                else:
                    self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("metrics endpoint: " + format, *args)

        self._metrics_text = metrics_text
        self._health = health
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        address = self._server.server_address
        self.host, self.port = str(address[0]), int(address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="framepipe-metrics", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread.start()
        logger.info("metrics at %s/metrics, health at %s/healthz", self.url, self.url)

    def stop(self) -> None:
        """Stop serving and close the socket. Safe to call twice."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(1.0)
        self._server.server_close()
