"""Running an ASGI app on uvicorn, on a background thread or in the foreground, with timeouts on
every connection.

uvicorn closes a kept-alive connection that stays idle (``keep_alive_s``), but it waits forever
for the first request of a connection, and for headers that trickle in: a few dozen silent
sockets would hold all of a small server's file descriptors. ``TimedH11Protocol`` closes any
connection that has no request under way for ``request_timeout_s``.

Example:
    >>> from framepipe.server.runner import ServerThread
    >>> server = ServerThread(app, port=0).start()  # doctest: +SKIP
    >>> server.url  # doctest: +SKIP
    'http://127.0.0.1:41234'
    >>> server.stop()  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any, Literal

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger("framepipe.server")


def timed_protocol(request_timeout_s: float) -> type[H11Protocol]:
    """An h11 protocol class that closes connections with no request under way for ``request_timeout_s``."""

    class TimedH11Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._framepipe_timer: asyncio.TimerHandle | None = None
            self._framepipe_arm()

        def _framepipe_arm(self) -> None:
            if getattr(self, "_framepipe_timer", None) is not None:
                self._framepipe_timer.cancel()  # type: ignore[union-attr]
            self._framepipe_timer = self.loop.call_later(request_timeout_s, self._framepipe_expire)

        def _framepipe_expire(self) -> None:
            busy = self.cycle is not None and not self.cycle.response_complete
            if busy:
                self._framepipe_arm()  # a request is being answered: look again later
            elif not self.transport.is_closing():
                self.transport.close()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._framepipe_arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if getattr(self, "_framepipe_timer", None) is not None:
                self._framepipe_timer.cancel()  # type: ignore[union-attr]
            super().connection_lost(exc)

    return TimedH11Protocol


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (``port=0``: any free port), ``SO_REUSEADDR`` so that a restarted
    server gets its port back at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP: asyncio then sets TCP_NODELAY on every accepted connection (without it, a
    # kept-alive client waits 40 ms for each answer: Nagle against delayed ACKs)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    return sock


class ServerThread:
    """``app`` on uvicorn at ``host:port``. ``start()`` serves on a background thread,
    ``serve_forever()`` on this one (Ctrl-C / SIGTERM end it); ``stop()`` ends either."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        request_timeout_s: float = 10.0,
        keep_alive_s: int = 5,
        name: str = "framepipe-server",
        lifespan: Literal["auto", "on", "off"] = "off",
    ) -> None:
        self.socket = bind(host, port)
        address = self.socket.getsockname()
        self.host, self.port = str(address[0]), int(address[1])
        self.name = name
        config = uvicorn.Config(
            app,
            http=timed_protocol(request_timeout_s),
            lifespan=lifespan,
            log_config=None,
            access_log=False,
            timeout_keep_alive=keep_alive_s,
            timeout_graceful_shutdown=2,
            server_header=False,
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout_s: float = 20.0) -> ServerThread:
        """Serve on a background thread; returns once the server accepts connections."""
        if self._thread is not None:
            raise RuntimeError("this server is already started")
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        if not self.server.started:
            raise RuntimeError(f"{self.name} did not start within {timeout_s:g} s")
        return self

    def _run(self) -> None:
        self.server.run(sockets=[self.socket])

    def serve_forever(self) -> None:
        """Serve on this thread until ``stop``, Ctrl-C or SIGTERM."""
        self._run()

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        self.server.should_exit = True
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self.socket.close()

    def go_away(self) -> None:
        """Vanish at once, as a crashed server would: the listening socket closes now, open
        connections are dropped."""
        self.server.should_exit = True
        self.server.force_exit = True
        for listener in getattr(self.server, "servers", []):
            listener.close()
        for connection in list(getattr(self.server.server_state, "connections", ())):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()
