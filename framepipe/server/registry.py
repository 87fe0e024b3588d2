"""``RegistryServer``: the model registry (``routes.registry``) on uvicorn, as
``framepipe registry serve`` runs it and as tests start it on 127.0.0.1.

Request records (``requests``, ``count``) are kept only when asked for (``record_requests``),
and at most ``max_records`` of them. Nothing else of a request outlives it. The access log names
the method, the path, the query's parameter names (never their values) and the status.

Example:
    >>> from framepipe.server.registry import RegistryServer
    >>> with RegistryServer("registry", port=0, api_keys=["secret"]) as server:  # doctest: +SKIP
    ...     print(server.url)  # API_BASE_URL for clients
    http://127.0.0.1:43121
"""

from __future__ import annotations

import collections
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

from framepipe.server.app import create_app
from framepipe.server.routes.registry import RegistryService
from framepipe.server.runner import ServerThread

logger = logging.getLogger("framepipe.registry")
_START = re.compile(r"\s*bytes=([0-9]{1,18})-")

ASGIApp = Callable[..., Any]


@dataclass(frozen=True)
class RequestRecord:
    """One request the server answered."""

    kind: str
    model_id: str
    name: str | None
    status: int
    range_start: int = 0
    bytes_sent: int = 0


def _classify(path: str) -> tuple[str, str, str | None]:
    segments = unquote(path).strip("/").split("/")
    if len(segments) == 3 and segments[0] == "ort":
        return "ort", f"{segments[1]}/{segments[2]}"[:300], None
    if len(segments) == 4 and segments[0] == "files":
        return "file", f"{segments[1]}/{segments[2]}"[:300], segments[3][:300]
    return "other", "", None


class _Observer:
    """ASGI middleware: the access log (without secrets) and, when ``records`` is given, one
    ``RequestRecord`` per request."""

    def __init__(self, app: ASGIApp, records: collections.deque[RequestRecord] | None, lock: threading.Lock):
        self.app, self.records, self.lock = app, records, lock

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status, sent, done = 0, 0, False

        def finish() -> None:
            # before the last byte leaves: whoever got the answer finds its record
            nonlocal done
            if done:
                return
            done = True
            names = sorted({k for k, _ in parse_qsl(scope.get("query_string", b"").decode("latin-1"))})
            query = f"?{'&'.join(names)}" if names else ""
            logger.info("%s %s%s %d", scope["method"], scope["path"][:300], query[:300], status)
            if self.records is not None:
                kind, model_id, name = _classify(scope["path"])
                headers = dict(scope.get("headers", ()))
                match = _START.match(headers.get(b"range", b"").decode("latin-1"))
                start = int(match.group(1)) if match else 0
                with self.lock:
                    self.records.append(RequestRecord(kind, model_id, name, status, start, sent))

        async def observe(message: dict[str, Any]) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if status >= 400:  # a client may act on the status line alone
                    finish()
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
                if not message.get("more_body"):
                    finish()
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            finish()


class RegistryServer:
    """The registry serving the models under ``root`` on uvicorn.

    ``port=0`` picks a free port (see ``url``). ``api_keys`` empty means no key is needed.
    ``public_url`` is the base of the file URLs handed to clients (default ``url``).
    ``request_timeout_s`` closes connections that send no request. ``record_requests`` keeps the
    last ``max_records`` requests in ``requests``. ``asgi_wrapper`` wraps the app (tests use it to
    inject faults).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        host: str = "127.0.0.1",
        port: int = 9001,
        api_keys: Iterable[str] = (),
        *,
        public_url: str | None = None,
        token_ttl_s: float = 3600.0,
        request_timeout_s: float = 10.0,
        record_requests: bool = False,
        max_records: int = 10_000,
        asgi_wrapper: Callable[[ASGIApp], ASGIApp] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._records: collections.deque[RequestRecord] | None = (
            collections.deque(maxlen=max_records) if record_requests else None
        )
        self.service = RegistryService(root, api_keys, token_ttl_s=token_ttl_s)
        app: ASGIApp = create_app(registry=self.service)
        if asgi_wrapper is not None:
            app = asgi_wrapper(app)
        self.thread = ServerThread(
            _Observer(app, self._records, self._lock),
            host,
            port,
            request_timeout_s=request_timeout_s,
            name="framepipe-registry",
        )
        self.service.public_url = (public_url or self.thread.url).rstrip("/")

    def __repr__(self) -> str:
        return f"RegistryServer(root={str(self.root)!r}, url={self.url!r}, keys={len(self.service.api_keys)})"

    @property
    def root(self) -> Any:
        return self.service.root

    @property
    def api_keys(self) -> frozenset[str]:
        return self.service.api_keys

    @property
    def url(self) -> str:
        """The base URL clients use as ``API_BASE_URL``."""
        return self.thread.url

    @property
    def requests(self) -> list[RequestRecord]:
        """The recorded requests, oldest first (empty unless ``record_requests``)."""
        with self._lock:
            return list(self._records or ())

    def count(self, kind: str | None = None, name: str | None = None, model_id: str | None = None) -> int:
        """How many recorded requests match (``kind`` ``"ort"`` or ``"file"``, file ``name``, ``model_id``)."""
        return sum(
            1
            for r in self.requests
            if (kind is None or r.kind == kind)
            and (name is None or r.name == name)
            and (model_id is None or r.model_id == model_id)
        )

    def start(self) -> RegistryServer:
        """Serve on a background thread; returns ``self``."""
        self.thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on this thread until ``stop``, Ctrl-C or SIGTERM."""
        self.thread.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        self.thread.stop()

    def go_away(self) -> None:
        """Vanish at once, as a crashed server would (call it from the server's own requests)."""
        self.thread.go_away()

    def __enter__(self) -> RegistryServer:
        return self if self.thread.server.started else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
