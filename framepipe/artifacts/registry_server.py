"""A small model registry: Roboflow's ``/ort`` download API over a folder laid out like the cache,
so that a team can host its own models on its network (and tests have a real server).

- ``GET /ort/<dataset>/<version>?api_key=K`` answers ``{"ort": {...}}`` as Roboflow's API does
  (``type``, ``modelType``, ``classes``, ``colors``, ``environment`` and ``model`` URLs), plus
  ``sha256`` and ``size`` of each file and ``weightsFile``.
- ``GET /files/<dataset>/<version>/<name>`` serves a file, with ``Range`` / ``If-Range`` support
  and an ``ETag`` (its sha256). When API keys are configured, file URLs carry a signed token
  (valid one hour) instead of the key.

Example:
    >>> from framepipe.artifacts.registry_server import RegistryServer, add_model
    >>> add_model("registry", "path/to/model-folder", "my-dataset/1")  # doctest: +SKIP
    >>> with RegistryServer("registry", port=0, api_keys=["secret"]) as server:  # doctest: +SKIP
    ...     print(server.url)  # API_BASE_URL for clients
    http://127.0.0.1:43121

From a shell: ``framepipe registry serve --root registry --api-key secret``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from framepipe.artifacts.atomic import sha256_file
from framepipe.artifacts.folder import (
    class_names_from_map,
    load_folder,
    read_class_names,
    read_environment,
    read_model_type,
    weights_in,
    write_class_names,
)
from framepipe.artifacts.layout import (
    CLASS_NAMES_FILE,
    ENVIRONMENT_FILE,
    KEYPOINTS_FILE,
    MODEL_TYPE_FILE,
    WEIGHTS_FILE_NAMES,
)
from framepipe.artifacts.model_id import ModelRef, model_folder, parse_model_id, safe_file_name
from framepipe.artifacts.redact import redact_text
from framepipe.errors import FramepipeError, ModelArtifactError, ModelNotFoundError

logger = logging.getLogger("framepipe.registry")
SERVED_FILES = (*WEIGHTS_FILE_NAMES, ENVIRONMENT_FILE)
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass
class Fault:
    """A fault to inject into one answer (for tests and failure drills).

    ``status``: answer with this HTTP status instead. ``cut_after``: close the connection after
    this many body bytes (the ``Content-Length`` announces the whole file). ``stop_server``: with
    ``cut_after``, stop the whole server there (the registry is gone). ``stall_after`` /
    ``stall_s``: pause that long after that many bytes. ``edit_ort``: change the ``ort`` object
    before it is sent.
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


@dataclass(frozen=True)
class RequestRecord:
    """One request the server answered."""

    kind: str
    model_id: str
    name: str | None
    status: int
    range_start: int = 0
    bytes_sent: int = 0


@dataclass
class _Hashes:
    lock: threading.Lock = field(default_factory=threading.Lock)
    known: dict[Path, tuple[int, int, str]] = field(default_factory=dict)

    def sha256(self, path: Path) -> str:
        stat = path.stat()
        with self.lock:
            cached = self.known.get(path)
        if cached and cached[:2] == (stat.st_size, stat.st_mtime_ns):
            return cached[2]
        digest = sha256_file(path)
        with self.lock:
            self.known[path] = (stat.st_size, stat.st_mtime_ns, digest)
        return digest


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RegistryServer:
    """A threaded HTTP registry serving the models under ``root``.

    ``port=0`` picks a free port (see ``url``). ``api_keys`` empty means no key is needed.
    ``fault_hook`` and ``throttle_bytes_per_s`` are for tests: inject faults, slow file bodies.
    ``requests`` lists every answered request (``count`` sums them up).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        host: str = "127.0.0.1",
        port: int = 9001,
        api_keys: Iterable[str] = (),
        *,
        fault_hook: FaultHook | None = None,
        throttle_bytes_per_s: float | None = None,
        token_ttl_s: float = 3600.0,
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise ModelNotFoundError(f"registry root {self.root} is not a folder")
        self.api_keys = frozenset(k for k in api_keys if k)
        self.fault_hook = fault_hook
        self.throttle_bytes_per_s = throttle_bytes_per_s
        self.token_ttl_s = token_ttl_s
        self.requests: list[RequestRecord] = []
        self._secret = secrets.token_bytes(32)
        self._hashes = _Hashes()
        self._numbers: dict[tuple[str, str, str | None], int] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        handler = type("RegistryHandler", (_Handler,), {"registry": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True

    def __repr__(self) -> str:
        return f"RegistryServer(root={str(self.root)!r}, url={self.url!r}, keys={len(self.api_keys)})"

    @property
    def url(self) -> str:
        """The base URL clients use as ``API_BASE_URL``."""
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> RegistryServer:
        """Serve on a background thread; returns ``self``."""
        if self._thread is not None:
            raise RuntimeError("this registry server is already started")
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.05,), name="framepipe-registry", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on this thread until ``stop`` (or Ctrl-C)."""
        self.httpd.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent; not from the thread running ``serve_forever``)."""
        with self._lock:
            first = not self._stopped.is_set()
            self._stopped.set()
        if first:
            self.httpd.shutdown()
            self.httpd.server_close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def go_away(self) -> None:
        """Vanish at once, as a crashed server would: new connections are refused from now on (the
        listening socket is closed here), ``serve_forever`` ends shortly after."""
        self.httpd.socket.close()
        threading.Thread(target=self.stop, name="framepipe-registry-stop", daemon=True).start()

    def __enter__(self) -> RegistryServer:
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def count(self, kind: str | None = None, name: str | None = None, model_id: str | None = None) -> int:
        """How many answered requests match (``kind`` ``"ort"`` or ``"file"``, file ``name``, ``model_id``)."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (kind is None or r.kind == kind)
                and (name is None or r.name == name)
                and (model_id is None or r.model_id == model_id)
            )

    # -- internals used by the handler ---------------------------------------------------------------
    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)

    def _number(self, kind: str, model_id: str, name: str | None) -> int:
        with self._lock:
            key = (kind, model_id, name)
            self._numbers[key] = self._numbers.get(key, 0) + 1
            return self._numbers[key]

    def _token(self, path: str, expires: int) -> str:
        return hmac.new(self._secret, f"{path}|{expires}".encode(), hashlib.sha256).hexdigest()

    def _check_key(self, query: dict[str, list[str]]) -> None:
        if not self.api_keys:
            return
        given = (query.get("api_key") or [""])[0]
        if not any(hmac.compare_digest(given.encode(), key.encode()) for key in self.api_keys):
            raise _HTTPError(401, "missing or unknown API key")

    def _check_token(self, path: str, query: dict[str, list[str]]) -> None:
        if not self.api_keys:
            return
        token = (query.get("token") or [""])[0]
        try:
            expires = int((query.get("expires") or ["0"])[0])
        except ValueError:
            expires = 0
        if expires < time.time() or not hmac.compare_digest(token, self._token(path, expires)):
            raise _HTTPError(401, "missing, wrong or expired download token; ask /ort again")

    def _model(self, dataset: str, version: str) -> tuple[ModelRef, Path]:
        try:
            ref = parse_model_id(f"{dataset}/{version}")
            folder = model_folder(self.root, ref)
        except FramepipeError as error:
            raise _HTTPError(404, str(error)) from None
        if weights_in(folder) is None or not (folder / ENVIRONMENT_FILE).is_file():
            raise _HTTPError(404, f"no model {ref.model_id} in this registry")
        return ref, folder

    def _ort(self, ref: ModelRef, folder: Path, base_url: str) -> dict[str, Any]:
        weights = weights_in(folder)
        assert weights is not None
        environment = read_environment(folder / ENVIRONMENT_FILE)
        class_names = read_class_names(folder / CLASS_NAMES_FILE) if (folder / CLASS_NAMES_FILE).is_file() else []
        if not class_names and isinstance(environment.get("CLASS_MAP"), dict):
            class_names = class_names_from_map(environment["CLASS_MAP"], str(folder / ENVIRONMENT_FILE))
        model_type = read_model_type(folder / MODEL_TYPE_FILE) if (folder / MODEL_TYPE_FILE).is_file() else {}
        expires = int(time.time() + self.token_ttl_s)

        def file_url(name: str) -> str:
            path = f"/files/{quote(ref.dataset_id)}/{quote(ref.version_id)}/{quote(name)}"
            if not self.api_keys:
                return base_url + path
            return f"{base_url}{path}?expires={expires}&token={self._token(path, expires)}"

        served = [weights, folder / ENVIRONMENT_FILE]
        ort: dict[str, Any] = {
            "name": ref.dataset_id,
            "type": model_type.get("project_task_type", "object-detection"),
            "classes": class_names,
            "colors": environment.get("COLORS", {}),
            "environment": file_url(ENVIRONMENT_FILE),
            "model": file_url(weights.name),
            "weightsFile": weights.name,
            "sha256": {p.name: self._hashes.sha256(p) for p in served},
            "size": {p.name: p.stat().st_size for p in served},
        }
        if model_type.get("model_type"):
            ort["modelType"] = model_type["model_type"]
        if (folder / KEYPOINTS_FILE).is_file():
            ort["keypoints_metadata"] = json.loads((folder / KEYPOINTS_FILE).read_text(encoding="utf-8"))
        return ort


class _Handler(BaseHTTPRequestHandler):
    registry: RegistryServer
    protocol_version = "HTTP/1.1"
    server_version = "framepipe-registry"

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), redact_text(format % args))

    def _send_json(self, status: int, body: Any) -> int:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        return len(data)

    def _fault(self, kind: str, model_id: str, name: str | None) -> Fault | None:
        hook = self.registry.fault_hook
        if hook is None:
            return None
        return hook(kind, model_id, name, self.registry._number(kind, model_id, name))

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        segments = parts.path.strip("/").split("/")
        kind, model_id, name = "other", "", None
        try:
            if len(segments) == 3 and segments[0] == "ort":
                kind, model_id = "ort", f"{segments[1]}/{segments[2]}"
                self._answer_ort(segments[1], segments[2], query)
            elif len(segments) == 4 and segments[0] == "files":
                kind, model_id, name = "file", f"{segments[1]}/{segments[2]}", segments[3]
                self._answer_file(segments[1], segments[2], segments[3], parts.path, query)
            else:
                raise _HTTPError(404, "unknown path; this registry serves /ort/<dataset>/<version>")
        except _HTTPError as error:
            self.close_connection = True
            self.registry._record(RequestRecord(kind, model_id, name, error.status))
            self._send_json(error.status, {"error": {"message": str(error), "status": error.status}})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _answer_ort(self, dataset: str, version: str, query: dict[str, list[str]]) -> None:
        model_id = f"{dataset}/{version}"
        fault = self._fault("ort", model_id, None)
        if fault is not None and fault.status:
            raise _HTTPError(fault.status, f"injected status {fault.status}")
        self.registry._check_key(query)
        ref, folder = self.registry._model(dataset, version)
        host = self.headers.get("Host")
        base_url = f"http://{host}" if host else self.registry.url
        try:
            ort = self.registry._ort(ref, folder, base_url)
        except (ModelArtifactError, OSError, ValueError) as error:
            logger.error("cannot serve %s: %s", ref.model_id, error)
            raise _HTTPError(500, f"the registry's copy of {ref.model_id} is broken") from None
        if fault is not None and fault.edit_ort is not None:
            fault.edit_ort(ort)
        sent = self._send_json(200, {"ort": ort})
        self.registry._record(RequestRecord("ort", model_id, None, 200, 0, sent))

    def _answer_file(self, dataset: str, version: str, name: str, path: str, query: dict[str, list[str]]) -> None:
        model_id = f"{dataset}/{version}"
        fault = self._fault("file", model_id, name)
        if fault is not None and fault.status:
            raise _HTTPError(fault.status, f"injected status {fault.status}")
        self.registry._check_token(path, query)
        _, folder = self.registry._model(dataset, version)
        try:
            safe_file_name(name)
        except FramepipeError:
            raise _HTTPError(404, "no such file") from None
        file = folder / name
        if name not in SERVED_FILES or not file.is_file():
            raise _HTTPError(404, "no such file")
        size = file.stat().st_size
        etag = f'"{self.registry._hashes.sha256(file)}"'
        start, end = 0, size - 1
        status = 200
        requested = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        match = _RANGE.match(requested.strip()) if requested else None
        if match and (if_range is None or if_range == etag) and (match.group(1) or match.group(2)):
            first, last = match.group(1), match.group(2)
            if first:
                start, end = int(first), min(int(last), size - 1) if last else size - 1
            else:
                start, end = max(0, size - int(last)), size - 1
            if start >= size or start > end:
                self.close_connection = True
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                self.registry._record(RequestRecord("file", model_id, name, 416, start))
                return
            status = 206
        length = end - start + 1
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        sent = self._stream(file, start, length, fault)
        self.registry._record(RequestRecord("file", model_id, name, status, start, sent))

    def _stream(self, file: Path, start: int, length: int, fault: Fault | None) -> int:
        rate = self.registry.throttle_bytes_per_s
        chunk_size = 64 * 1024 if not rate else max(1024, min(64 * 1024, int(rate / 20)))
        cut = fault.cut_after if fault is not None else None
        stall = fault.stall_after if fault is not None and fault.stall_s > 0 else None
        sent = 0
        began = time.monotonic()
        with open(file, "rb") as f:
            f.seek(start)
            while sent < length:
                limit = length - sent
                if cut is not None:
                    limit = min(limit, cut - sent)
                if stall is not None and sent < stall:
                    limit = min(limit, stall - sent)
                if limit <= 0 and cut is not None and sent >= cut:
                    break
                if stall is not None and sent >= stall:
                    assert fault is not None
                    self.wfile.flush()
                    time.sleep(fault.stall_s)
                    stall = None
                    continue
                data = f.read(min(chunk_size, limit))
                if not data:
                    break
                self.wfile.write(data)
                sent += len(data)
                if rate:
                    ahead = sent / rate - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)
        if cut is not None and sent < length:
            self.wfile.flush()
            self.close_connection = True
            assert fault is not None
            if fault.stop_server:
                self.registry.go_away()
            self.connection.shutdown(socket.SHUT_RDWR)
        return sent


def _copy_into(source: Path, destination: Path) -> None:
    temporary = destination.with_name(f".{destination.name}.tmp")
    shutil.copyfile(source, temporary)
    os.replace(temporary, destination)


def add_model(
    root: str | os.PathLike[str],
    source: str | os.PathLike[str],
    model_id: str,
    *,
    task_type: str | None = None,
    model_type: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Put a model (a folder in Roboflow's layout, or an ``.onnx`` file with or without side files)
    into a registry folder as ``root/<dataset>/<version>/``; returns that folder.

    Missing side files are made: ``environment.json`` (no preprocessing), ``class_names.txt`` (from
    ``CLASS_MAP`` or the ONNX file's ``names`` metadata), ``model_type.json`` (``task_type``,
    default ``object-detection``; ``model_type``, default ``yolov8n`` or ``yolov5v2s`` for
    ``yolov5s_weights.onnx``).

    Example:
        >>> add_model("registry", "runs/best.onnx", "doorbell/2", model_type="yolov8s")  # doctest: +SKIP
        PosixPath('registry/doorbell/2')
    """
    ref = parse_model_id(model_id)
    root_path = Path(root).expanduser()
    root_path.mkdir(parents=True, exist_ok=True)
    destination = model_folder(root_path, ref)
    source_path = Path(source).expanduser()
    if source_path.is_dir():
        weights = weights_in(source_path)
        if weights is None:
            raise ModelNotFoundError(f"{source_path} holds no {' or '.join(WEIGHTS_FILE_NAMES)}")
        side = source_path
    elif source_path.is_file() and source_path.suffix.lower() == ".onnx":
        weights, side = source_path, source_path.parent
    else:
        raise ModelNotFoundError(f"{source_path} is neither a model folder nor an .onnx file")
    if destination.exists() and any(destination.iterdir()) and not overwrite:
        raise ModelArtifactError(f"{destination} already holds a model; pass overwrite=True (--force) to replace it")
    load_folder(side, model_id, weights=weights)  # refuses malformed side files before anything is copied
    destination.mkdir(parents=True, exist_ok=True)
    weights_name = weights.name if weights.name in WEIGHTS_FILE_NAMES else WEIGHTS_FILE_NAMES[0]
    for other in WEIGHTS_FILE_NAMES:
        if other != weights_name:
            (destination / other).unlink(missing_ok=True)
    _copy_into(weights, destination / weights_name)
    for name in (ENVIRONMENT_FILE, CLASS_NAMES_FILE, KEYPOINTS_FILE):
        if (side / name).is_file():
            _copy_into(side / name, destination / name)
    if not (destination / ENVIRONMENT_FILE).is_file():
        (destination / ENVIRONMENT_FILE).write_text(json.dumps({"PREPROCESSING": "{}"}, indent=4), encoding="utf-8")
    if not (destination / CLASS_NAMES_FILE).is_file():
        names = load_folder(destination, model_id).class_names or _onnx_class_names(destination / weights_name)
        (destination / CLASS_NAMES_FILE).write_bytes(write_class_names(names))
    existing = read_model_type(side / MODEL_TYPE_FILE) if (side / MODEL_TYPE_FILE).is_file() else {}
    default_type = "yolov5v2s" if weights_name == "yolov5s_weights.onnx" else "yolov8n"
    record = {
        "project_task_type": task_type or existing.get("project_task_type", "object-detection"),
        "model_type": model_type or existing.get("model_type", default_type),
        "model_id": ref.model_id,
    }
    (destination / MODEL_TYPE_FILE).write_text(json.dumps(record, indent=4), encoding="utf-8")
    return destination


def _onnx_class_names(weights: Path) -> list[str]:
    import ast

    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(weights), providers=["CPUExecutionProvider"])
    except Exception as error:
        raise ModelArtifactError(f"{weights} is not an ONNX model onnxruntime can read: {error}") from None
    raw = session.get_modelmeta().custom_metadata_map.get("names")
    if not raw:
        return []
    try:
        parsed = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return []
    if isinstance(parsed, dict):
        return [str(parsed[k]) for k in sorted(parsed)]
    return [str(n) for n in parsed] if isinstance(parsed, list) else []
