"""A small HTTP endpoint for a running pipeline: ``/metrics`` (Prometheus text) and ``/healthz``.

``/healthz`` answers 200 with ``{"status": "ok", ...}`` while at least one source is up and the
pipeline runs, and 503 with ``"unhealthy"`` otherwise. It listens on 127.0.0.1 unless told
otherwise; connections that stay silent are closed after ``timeout_s`` (see
``framepipe._internal.http``).

Example:
    >>> from framepipe import InferencePipeline
    >>> pipeline = InferencePipeline.init(..., metrics_port=9090)  # doctest: +SKIP
    >>> # curl http://127.0.0.1:9090/metrics
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from framepipe._internal.http import QuietHandler, SmallHTTPServer

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
        timeout_s: float = 10.0,
    ) -> None:
        owner = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self.send_body(200, PROMETHEUS_CONTENT_TYPE, owner._metrics_text().encode("utf-8"))
                elif path == "/healthz":
                    healthy, details = owner._health()
                    body = json.dumps({"status": "ok" if healthy else "unhealthy", **details}).encode("utf-8")
                    self.send_body(200 if healthy else 503, "application/json", body)
                else:
                    self.send_body(404, "text/plain", b"not found: try /metrics or /healthz\n")

            do_HEAD = do_GET

        self._metrics_text = metrics_text
        self._health = health
        self._server = SmallHTTPServer(Handler, host, port, name="framepipe-metrics", timeout_s=timeout_s)
        self.host, self.port = self._server.host, self._server.port
        self._started = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._server.start()
        self._started = True
        logger.info("metrics at %s/metrics, health at %s/healthz", self.url, self.url)

    def stop(self) -> None:
        """Stop serving and close the socket. Safe to call twice."""
        self._server.stop()
