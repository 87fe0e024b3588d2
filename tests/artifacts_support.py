"""Helpers for the artifact-cache tests: a registry folder holding the real bundled model, a real
registry server on 127.0.0.1, and child processes that load models from it."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framepipe.artifacts.registry_folder import add_model
from framepipe.artifacts.resolve import BUNDLED_DIR
from framepipe.artifacts.settings import RegistrySettings
from framepipe.server import RegistryServer

SECRET = "sk-test-7f3a9c0b1d2e4f5a"
"""The API key every test uses; it must never show up in a log line, a message or the cache."""
MODEL_ID = "shapes/1"
SOURCE = BUNDLED_DIR / "framepipe-shapes" / "1"
REPO = Path(__file__).resolve().parent.parent


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_registry(root: Path, model_id: str = MODEL_ID) -> Path:
    """A registry folder holding the bundled detector as ``model_id``."""
    return add_model(root, SOURCE, model_id)


@dataclass
class Fault:
    """A fault to inject into one answer of the registry.

    ``status``: answer with this HTTP status instead. ``cut_after``: break the connection after
    this many body bytes (the ``Content-Length`` announces the whole file). ``stop_server``: with
    ``cut_after``, the whole server vanishes there. ``stall_after`` / ``stall_s``: pause that long
    after that many bytes. ``edit_ort``: change the ``ort`` object before it is sent.
    """

    status: int | None = None
    cut_after: int | None = None
    stop_server: bool = False
    stall_after: int | None = None
    stall_s: float = 0.0
    edit_ort: Callable[[dict[str, Any]], None] | None = None


FaultHook = Callable[[str, str, "str | None", int], "Fault | None"]
"""``hook(kind, model_id, file_name, number)``: ``kind`` is ``"ort"`` or ``"file"``, ``number``
counts the requests for the same thing from 1."""


class InjectedCut(Exception):
    """Raised inside the app to make uvicorn drop the connection mid-body."""


class FaultInjector:
    """ASGI middleware around the registry app: faults from ``hook`` and a bandwidth limit."""

    def __init__(self, app: Any, hook: FaultHook | None, throttle: float | None) -> None:
        self.app, self.hook, self.throttle = app, hook, throttle
        self.numbers: dict[tuple[str, str, str | None], int] = {}
        self.server: RegistryServer | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        import asyncio
        import json
        import time

        from framepipe.server.registry import _classify

        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        kind, model_id, name = _classify(scope["path"])
        fault = None
        if self.hook is not None and kind != "other":
            key = (kind, model_id, name)
            self.numbers[key] = self.numbers.get(key, 0) + 1
            fault = self.hook(kind, model_id, name, self.numbers[key])
        if fault is not None and fault.status:
            body = json.dumps({"error": {"message": f"injected status {fault.status}"}}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": fault.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        sent = 0
        began = time.monotonic()
        held: list[dict[str, Any]] = []

        async def faulty(message: dict[str, Any]) -> None:
            nonlocal sent
            if fault is not None and fault.edit_ort is not None and kind == "ort":
                held.append(message)  # the whole answer, edited once it is complete
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    data = json.loads(b"".join(m.get("body", b"") for m in held[1:]))
                    fault.edit_ort(data["ort"])
                    body = json.dumps(data).encode()
                    start = dict(held[0])
                    start["headers"] = [(k, v) for k, v in start["headers"] if k != b"content-length"]
                    start["headers"].append((b"content-length", str(len(body)).encode()))
                    await send(start)
                    await send({"type": "http.response.body", "body": body})
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            body = message.get("body", b"")
            if fault is not None and fault.stall_after is not None and sent < fault.stall_after <= sent + len(body):
                split = fault.stall_after - sent
                await send({"type": "http.response.body", "body": body[:split], "more_body": True})
                sent += split
                body = body[split:]
                await asyncio.sleep(fault.stall_s)
            if fault is not None and fault.cut_after is not None and sent + len(body) > fault.cut_after:
                part = body[: max(0, fault.cut_after - sent)]
                await send({"type": "http.response.body", "body": part, "more_body": True})
                sent += len(part)
                if fault.stop_server and self.server is not None:
                    self.server.go_away()
                raise InjectedCut(f"cut after {sent} bytes")
            await send({**message, "body": body})
            sent += len(body)
            if self.throttle:
                ahead = sent / self.throttle - (time.monotonic() - began)
                if ahead > 0:
                    await asyncio.sleep(ahead)

        await self.app(scope, receive, faulty)


def start_server(
    root: Path,
    keys: tuple[str, ...] = (SECRET,),
    fault_hook: FaultHook | None = None,
    throttle: float | None = None,
    port: int = 0,
) -> RegistryServer:
    """The registry (FastAPI on uvicorn) on 127.0.0.1, recording requests, with test faults."""
    injectors: list[FaultInjector] = []

    def wrap(app: Any) -> Any:
        injectors.append(FaultInjector(app, fault_hook, throttle))
        return injectors[-1]

    server = RegistryServer(root, port=port, api_keys=keys, record_requests=True, asgi_wrapper=wrap)
    injectors[0].server = server
    return server.start()


def settings_for(server: RegistryServer, **overrides: object) -> RegistrySettings:
    """Client settings pointing at ``server`` with quick retries."""
    values: dict[str, object] = {
        "api_base_url": server.url,
        "api_base_url_is_default": False,
        "api_key": SECRET,
        "device_id": "test-device",
        "backoff_s": 0.02,
        "retries": 2,
        "read_timeout_s": 5.0,
        "lock_timeout_s": 30.0,
    }
    values.update(overrides)
    return RegistrySettings(**values)  # type: ignore[arg-type]


def child_env(server_url: str | None, cache: Path, **extra: str) -> dict[str, str]:
    """Environment of a child process: the registry, the cache, the key, quick retries."""
    env = {k: v for k, v in os.environ.items() if k not in ("ROBOFLOW_API_KEY", "API_KEY", "API_BASE_URL")}
    env.update(
        {
            "MODEL_CACHE_DIR": str(cache),
            "ROBOFLOW_API_KEY": SECRET,
            "FRAMEPIPE_RETRY_BACKOFF": "0.05",
            "PYTHONPATH": str(REPO),
        }
    )
    if server_url is not None:
        env["API_BASE_URL"] = server_url
    env.update(extra)
    return env


def framepipe_command() -> list[str]:
    """The ``framepipe`` console script of this environment."""
    script = Path(sys.executable).with_name("framepipe")
    return [str(script)] if script.exists() else [sys.executable, "-m", "framepipe"]


def run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def files_containing(folder: Path, needle: str) -> list[Path]:
    """Every file under ``folder`` whose bytes contain ``needle``."""
    data = needle.encode()
    return [p for p in folder.rglob("*") if p.is_file() and data in p.read_bytes()]


def copy_model(destination: Path, weights_name: str = "weights.onnx") -> Path:
    """The bundled model's files copied into ``destination`` (weights under ``weights_name``)."""
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copy(SOURCE / "weights.onnx", destination / weights_name)
    for name in ("environment.json", "class_names.txt", "model_type.json"):
        shutil.copy(SOURCE / name, destination / name)
    return destination


def load_in_child(
    model_id: str, cache: str, settings: RegistrySettings, ready: str = "", go: str = "", result: str = ""
) -> None:
    """Run in a child process: say ``ready``, wait for ``go``, load ``model_id`` into ``cache``, and
    write what was loaded (sha256 of the weights, state, seconds) as JSON to ``result``."""
    import json
    import time

    from framepipe.artifacts import ModelCache, fetch_model, load_folder

    if ready:
        Path(ready).touch()
    deadline = time.monotonic() + 60
    while go and not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.002)
    began = time.monotonic()
    fetched = fetch_model(model_id, cache_dir=cache, settings=settings)
    artifacts = load_folder(fetched.folder, fetched.model_id)
    seconds = time.monotonic() - began
    if result:
        inspection = ModelCache(cache).inspect(model_id)
        manifest = inspection.manifest.files["weights.onnx"].sha256 if inspection.manifest else None
        report = {
            "sha256": sha256(artifacts.weights_path),
            "manifest_sha256": manifest,
            "state": inspection.state.value,
            "path": str(artifacts.weights_path),
            "seconds": seconds,
            "downloaded": fetched.downloaded,
        }
        Path(result).write_text(json.dumps(report))


def process_context():  # -> multiprocessing context
    """Processes forked from a server that has framepipe imported already: real, separate processes
    that start in milliseconds (``spawn`` where ``forkserver`` does not exist)."""
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["framepipe.artifacts", "tests.artifacts_support"])
        return context
    return multiprocessing.get_context("spawn")


class HostileRegistry:
    """A registry written for the tests that answers with raw bytes chosen by the test: bodies cut
    off or endless, no ``Content-Length``, odd status codes, compressed bodies, HTML pages.

    ``ort`` is the JSON object sent for ``GET /ort/...`` (``model`` and ``environment`` URLs are
    filled in, pointing at ``/files/weights`` and ``/files/environment``) unless ``ort_raw`` is
    set. ``files[name]`` is called as ``answer(connection, request_headers)`` and writes the whole
    raw HTTP answer itself. ``seen`` records the request headers of every request (bounded).
    """

    def __init__(self) -> None:
        import socket
        import threading

        self.ort: dict[str, object] = {}
        self.ort_raw: bytes | None = None
        self.ort_answer: object = None
        self.files: dict[str, object] = {}
        self.seen: list[tuple[str, dict[str, str]]] = []
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def close(self) -> None:
        self._stop.set()
        self._accept.join(5)
        for thread in self._threads:
            thread.join(5)
        self._listener.close()

    def __enter__(self) -> HostileRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        import threading

        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                continue
            thread = threading.Thread(target=self._answer, args=(connection,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _answer(self, connection) -> None:  # one request per connection
        import json

        connection.settimeout(10)
        try:
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = connection.recv(4096)
                if not chunk:
                    return
                data += chunk
            head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            path = head[0].split(" ")[1]
            headers = {
                k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in head[1:] if ":" in line)
            }
            if len(self.seen) < 100:
                self.seen.append((path, headers))
            if path.startswith("/ort/") and self.ort_answer is not None:
                self.ort_answer(connection, headers)  # type: ignore[operator]
                return
            if path.startswith("/ort/"):
                body = self.ort_raw
                if body is None:
                    ort = {"model": f"{self.url}/files/weights", "environment": f"{self.url}/files/environment"}
                    body = json.dumps({"ort": {**ort, **self.ort}}).encode()
                send_raw(connection, 200, body, {"Content-Type": "application/json"})
                return
            name = path.split("?", 1)[0].rsplit("/", 1)[-1]
            answer = self.files.get(name)
            if answer is None:
                send_raw(connection, 404, b"{}", {})
                return
            answer(connection, headers)  # type: ignore[operator]
        except OSError:
            pass
        finally:
            connection.close()


def send_raw(connection, status: int, body: bytes, headers: dict[str, str], length: bool = True) -> None:
    """Write one HTTP/1.1 answer; ``length=False`` leaves ``Content-Length`` out (close-delimited)."""
    lines = [f"HTTP/1.1 {status} X", "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
