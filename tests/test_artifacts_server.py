"""Issue 14, fault 8: the registry server (``framepipe registry serve``) against clients that are
careless or hostile: memory that stays flat, idle connections closed, no file outside the root
served, no secret logged, no server path revealed, HEAD, ranges as RFC 9110 says, signed URLs
that ignore ``Host``, request bodies that stay bodies, absurd headers that still get an answer."""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from framepipe.server import RegistryServer
from tests.artifacts_support import SECRET, SOURCE, child_env, framepipe_command, make_registry

WEIGHTS_SIZE = (SOURCE / "weights.onnx").stat().st_size


def make_server(root: Path, **options: object) -> RegistryServer:
    return RegistryServer(root, port=0, api_keys=(SECRET,), **options).start()  # type: ignore[arg-type]


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    make_registry(root)
    return root


def _file_url(server: RegistryServer, name: str = "weights.onnx") -> str:
    answer = requests.get(f"{server.url}/ort/shapes/1", params={"api_key": SECRET}, timeout=10).json()
    return answer["ort"]["model" if name != "environment.json" else "environment"]


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's memory from /proc")
def test_unauthenticated_requests_with_huge_ids_leave_no_memory_behind(registry, tmp_path) -> None:
    """``framepipe registry serve`` in its own process: 1,500 refused requests with 10 KB ids."""
    env = child_env(None, tmp_path / "unused", FRAMEPIPE_REGISTRY_API_KEYS=SECRET)
    command = [*framepipe_command(), "registry", "serve", "--root", str(registry), "--port", "0"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split(" at ")[1].split()[0]
        session = requests.Session()
        huge = "x" * 10_000
        for _ in range(300):  # warm up: imports, buffers, the allocator's arenas
            session.get(f"{url}/ort/{huge}/1", params={"api_key": "nope"}, timeout=10)
        before = _rss(server.pid)
        for _ in range(1500):
            assert session.get(f"{url}/ort/{huge}/1", params={"api_key": "nope"}, timeout=10).status_code == 401
        grown = _rss(server.pid) - before
        assert grown < 6 << 20, f"the server grew {grown / 2**20:.1f} MiB over 1,500 refused requests"
    finally:
        server.terminate()
        server.wait(timeout=10)
    bounded = make_server(registry, record_requests=True, max_records=50)
    try:
        for _ in range(120):
            requests.get(f"{bounded.url}/ort/a/1", timeout=10)
        assert len(bounded.requests) == 50  # records only when asked for, and bounded
    finally:
        bounded.stop()


def test_idle_connections_are_closed_and_the_server_keeps_answering(registry) -> None:
    server = make_server(registry, request_timeout_s=1.0)
    sockets = []
    try:
        for _ in range(70):
            sockets.append(socket.create_connection(("127.0.0.1", server.thread.port), timeout=10))
        sockets[0].sendall(b"GET /ort/shapes/1 HTTP/1.1\r\nHost: x\r\n")  # headers that never end
        began = time.monotonic()
        for connection in sockets:
            connection.settimeout(max(0.1, 8 - (time.monotonic() - began)))
            connection.recv(1024)  # drained (a 408 for the unfinished one) until the server closes it
        open_ones = 0
        for connection in sockets:
            connection.settimeout(0.05)
            try:
                open_ones += connection.recv(1) != b""
            except TimeoutError:
                open_ones += 1
        assert open_ones == 0, f"{open_ones} idle connections still open after {time.monotonic() - began:.1f} s"
        assert requests.get(_file_url(server), timeout=10).status_code == 200
    finally:
        for connection in sockets:
            connection.close()
        server.stop()


def test_symlinks_inside_the_root_that_point_outside_are_not_served(registry, tmp_path) -> None:
    secret_file = tmp_path / "server-private.json"
    secret_file.write_text('{"PREPROCESSING": {}, "private": "do-not-serve-4711"}')
    environment = registry / "shapes" / "1" / "environment.json"
    environment.unlink()
    os.symlink(secret_file, environment)
    server = make_server(registry)
    try:
        ort = requests.get(f"{server.url}/ort/shapes/1", params={"api_key": SECRET}, timeout=10)
        assert ort.status_code == 404 and "do-not-serve-4711" not in ort.text
        direct = requests.get(f"{server.url}/files/shapes/1/environment.json", timeout=10)
        assert direct.status_code in (401, 404) and "do-not-serve-4711" not in direct.text
    finally:
        server.stop()


def test_an_encoded_api_key_parameter_is_never_logged(registry, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    server = make_server(registry)
    try:
        for query in (f"api%5Fkey={SECRET}&nocache=true", f"API%5FKEY={SECRET}", f"%61pi_key={SECRET}"):
            # http.client sends the target as written (requests would decode %5F back to "_")
            connection = http.client.HTTPConnection("127.0.0.1", server.thread.port, timeout=10)
            connection.request("GET", f"/ort/shapes/1?{query}")
            assert connection.getresponse().status in (200, 401)
            connection.close()
    finally:
        server.stop()
    served = [r for r in caplog.records if r.name.startswith(("framepipe", "uvicorn"))]  # the server's own logs
    assert served and not [r for r in served if SECRET in r.getMessage()]


def test_error_answers_reveal_no_server_path(registry, tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "1").mkdir(parents=True)
    os.symlink(elsewhere, registry / "escape")  # a dataset folder that leads out of the root
    server = make_server(registry)
    try:
        paths = ("/ort/escape/1", "/ort/..%2F..%2Fetc/1", "/ort/shapes/7", "/ort/sh%00apes/1", "/files/shapes/1/..%2Fx")
        for path in (*paths, "/nope"):
            answer = requests.get(f"{server.url}{path}", params={"api_key": SECRET}, timeout=10)
            assert answer.status_code >= 400
            assert str(registry.resolve().parent) not in answer.text and "/tmp" not in answer.text, answer.text
    finally:
        server.stop()


def test_head_ranges_host_and_absurd_headers(registry) -> None:
    server = make_server(registry)
    try:
        url = _file_url(server)
        head = requests.head(url, timeout=10)
        assert head.status_code == 200 and int(head.headers["Content-Length"]) == WEIGHTS_SIZE and head.content == b""
        assert requests.head(f"{server.url}/ort/shapes/1", params={"api_key": SECRET}, timeout=10).status_code == 200
        backwards = requests.get(url, headers={"Range": "bytes=5-3"}, timeout=10)
        assert backwards.status_code == 200 and len(backwards.content) == WEIGHTS_SIZE  # ignored, as RFC 9110 says
        part = requests.get(url, headers={"Range": "bytes=5-9"}, timeout=10)
        assert part.status_code == 206 and len(part.content) == 5
        past = requests.get(url, headers={"Range": f"bytes={WEIGHTS_SIZE}-"}, timeout=10)
        assert past.status_code == 416 and past.headers["Content-Range"] == f"bytes */{WEIGHTS_SIZE}"
        absurd = requests.get(url, headers={"Range": "bytes=" + "9" * 5000 + "-"}, timeout=10)
        assert absurd.status_code == 200 and len(absurd.content) == WEIGHTS_SIZE
        forged = requests.get(
            f"{server.url}/ort/shapes/1", params={"api_key": SECRET}, headers={"Host": "evil.example:80"}, timeout=10
        ).json()["ort"]
        assert forged["model"].startswith(server.url + "/") and "evil" not in json.dumps(forged)
    finally:
        server.stop()


def test_a_get_body_on_a_kept_alive_connection_is_not_a_second_request(registry) -> None:
    server = make_server(registry, record_requests=True)
    try:
        smuggled = b"GET /files/shapes/1/weights.onnx HTTP/1.1\r\nHost: x\r\n\r\n"
        head = f"GET /ort/shapes/1?api_key={SECRET} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(smuggled)}\r\n\r\n"
        with socket.create_connection(("127.0.0.1", server.thread.port), timeout=10) as connection:
            connection.sendall(head.encode() + smuggled)
            connection.settimeout(1.5)
            received = b""
            try:
                while chunk := connection.recv(65536):
                    received += chunk
            except TimeoutError:
                pass
        assert received.count(b"HTTP/1.1 ") == 1, received[:500]
        assert [r.kind for r in server.requests] == ["ort"]
    finally:
        server.stop()
