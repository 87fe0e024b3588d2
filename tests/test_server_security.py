"""Security and bad input on the inference server (real uvicorn on 127.0.0.1): API keys as Roboflow
takes them and a server-side key, URL-input rules (allowed, https only, size cap, timeout, redirects),
the body and pixel caps, the per-request timeout, and a specific 4xx in Roboflow's shape for each bad
input, never a 500; the key is in no log line at DEBUG; one client's bad request never spoils another's."""

from __future__ import annotations

import base64
import logging
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from framepipe.models import ModelManager, get_model
from framepipe.server import InferenceServer, ServerSettings
from framepipe.server.model_service import ModelService
from tests.servers import silent_server
from tests.test_server_support import b64, body, comparable, png, slow_classifier, task_cache

KEY = "sk-test-7f3a9c1e5b2d"
WRONG = "sk-wrong-0000aaaa"
DETECTOR = "framepipe-shapes/1"
FRAME = (np.arange(120 * 160 * 3) % 251).astype(np.uint8).reshape(120, 160, 3)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    task_cache(root)
    slow_classifier(root / "fp-slow" / "1")
    monkeypatch.setenv("MODEL_CACHE_DIR", str(root))
    return root


def start(**settings: Any) -> InferenceServer:
    return InferenceServer(port=0, settings=ServerSettings(**settings), models=ModelService(ModelManager())).start()


@pytest.fixture
def open_server(cache: Path) -> Iterator[InferenceServer]:
    server = start(max_body_bytes=2_000_000, max_image_pixels=1_000_000, request_timeout_s=30)
    yield server
    server.stop()


def infer(url: str, route: str = "object_detection", **fields: Any) -> requests.Response:
    return requests.post(f"{url}/infer/{route}", json=fields, timeout=60)


def refused(answer: requests.Response, status: int, error_type: str, words: str = "") -> None:
    assert answer.status_code == status, answer.text
    payload = answer.json()
    assert payload["error_type"] == error_type and "Traceback" not in answer.text
    assert words.lower() in payload["message"].lower(), payload["message"]


def test_server_key_required_everywhere_but_healthz(cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = start(api_keys=(KEY,))
    try:
        url = server.url
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
        for path in ("/info", "/model/registry", "/readiness", "/metrics"):
            refused(requests.get(url + path, timeout=10), 401, "ApiKeyError", "needs an API key")
            refused(requests.get(url + path, params={"api_key": WRONG}, timeout=10), 401, "ApiKeyError", "not one")
            assert requests.get(url + path, params={"api_key": KEY}, timeout=10).status_code == 200
        refused(infer(url, **body(DETECTOR, FRAME)), 401, "ApiKeyError")
        wrong = infer(url, **body(DETECTOR, FRAME, api_key=WRONG))
        refused(wrong, 401, "ApiKeyError")
        assert WRONG not in wrong.text and KEY not in wrong.text
        assert infer(url, **body(DETECTOR, FRAME, api_key=KEY)).status_code == 200  # in the body
        headers = {"Authorization": f"Bearer {KEY}"}
        answer = requests.post(f"{url}/infer/object_detection", json=body(DETECTOR, FRAME), headers=headers, timeout=60)
        assert answer.status_code == 200  # as a bearer token
        legacy = f"{url}/{DETECTOR}"
        data, form = base64.b64encode(png(FRAME)), {"Content-Type": "application/x-www-form-urlencoded"}
        refused(requests.post(legacy, data=data, headers=form, timeout=10), 401, "ApiKeyError")
        assert requests.post(legacy, params={"api_key": KEY}, data=data, headers=form, timeout=60).status_code == 200
        refused(requests.post(f"{url}/model/add", json={"model_id": DETECTOR}, timeout=10), 401, "ApiKeyError")
        added = requests.post(f"{url}/model/add", json={"model_id": DETECTOR, "api_key": KEY}, timeout=60)
        assert added.status_code == 200
        infer(url, **body("nope/1", FRAME, api_key=KEY))  # an error path with the key in the body
    finally:
        server.stop()
    # the server's records: those of other threads (this thread is the client, whose own urllib3 logs its URLs)
    me = threading.get_ident()
    logged = [r.getMessage() + (r.exc_text or "") for r in caplog.records if r.thread != me]
    assert any("/infer/object_detection" in line for line in logged)  # the server's DEBUG lines were captured
    assert not [line for line in logged if KEY in line or WRONG in line]


def test_bad_inputs_get_specific_4xx(open_server: InferenceServer) -> None:
    url = open_server.url
    refused(
        infer(url, model_id=DETECTOR, image={"type": "base64", "value": "bm90IGFuIGltYWdl"}),
        400,
        "InvalidImageError",
        "not a JPEG",
    )
    truncated = base64.b64encode(png(FRAME)[:120]).decode()
    refused(infer(url, model_id=DETECTOR, image={"type": "base64", "value": truncated}), 400, "InvalidImageError")
    refused(
        infer(url, model_id=DETECTOR, image={"type": "numpy", "value": "gASV"}), 400, "InputNotAllowedError", "pickle"
    )
    refused(infer(url, model_id=DETECTOR, image={"type": "file", "value": "/etc/passwd"}), 400, "InputNotAllowedError")
    refused(infer(url, **body("no-such-model/7", FRAME)), 404, "ModelNotFoundError")
    for bad_id in ("../../etc/passwd", "/tmp/model.onnx", "a/b/c"):
        answer = infer(url, **body(bad_id, FRAME))
        assert answer.status_code == 400 and "Invalid Model ID" in answer.json()["message"], bad_id
    refused(infer(url, "classification", **body(DETECTOR, FRAME)), 400, "WrongTaskError", "/infer/object_detection")
    refused(infer(url, **body(DETECTOR, FRAME, confidence=5)), 400, "InvalidParameterError", "confidence")
    refused(
        infer(url, "instance_segmentation", **body("fp-seg/1", FRAME, mask_decode_mode="weird")),
        400,
        "InvalidParameterError",
        "mask_decode_mode",
    )
    refused(infer(url, **body(DETECTOR, FRAME, max_detections="many")), 422, "MalformedRequestError", "max_detections")
    refused(infer(url, image={"type": "base64", "value": b64(FRAME)}), 422, "MalformedRequestError", "model_id")
    not_json = requests.post(f"{url}/infer/object_detection", data=b"{oops", timeout=10)
    refused(not_json, 422, "MalformedRequestError", "not JSON")
    deep = requests.post(f"{url}/infer/object_detection", data=b"[" * 100_000, timeout=10)
    assert deep.status_code == 422


def test_body_and_pixel_caps(open_server: InferenceServer) -> None:
    url = open_server.url
    big = infer(url, model_id=DETECTOR, image={"type": "base64", "value": "A" * 2_100_000})
    refused(big, 413, "RequestTooLargeError")
    refused(infer(url, **body(DETECTOR, np.zeros((1100, 1000, 3), np.uint8))), 413, "ImageTooLargeError", "1000x1100")
    # a decompression bomb: a PNG whose header says 60000 x 60000; refused from the header, nothing decoded
    header = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    bomb = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    started = time.monotonic()
    answer = infer(url, model_id=DETECTOR, image={"type": "base64", "value": base64.b64encode(bomb).decode()})
    refused(answer, 413, "ImageTooLargeError", "60000x60000")
    assert time.monotonic() - started < 10


def test_request_timeout(cache: Path) -> None:
    server = start(request_timeout_s=0.001)
    try:
        images = [np.full((64, 64, 3), i, np.uint8) for i in range(64)]
        refused(infer(server.url, "classification", **body("fp-slow/1", images)), 504, "InferenceTimeoutError")
    finally:
        server.stop()


class _Redirects(BaseHTTPRequestHandler):
    payload = b""

    def do_GET(self) -> None:
        if self.path == "/to-file":
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.end_headers()
            return
        if self.path == "/to-image":
            self.send_response(301)
            self.send_header("Location", "/image.png")
            self.end_headers()
            return
        if self.path == "/missing":
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, *args: Any) -> None:
        pass


def test_url_input_rules(cache: Path) -> None:
    _Redirects.payload = png(FRAME)
    files = ThreadingHTTPServer(("127.0.0.1", 0), _Redirects)
    threading.Thread(target=files.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{files.server_address[1]}"
    strict, off = start(), start(allow_url_input=False)
    loose = start(allow_non_https_url_input=True, url_max_bytes=len(_Redirects.payload) + 10, url_timeout_s=0.5)
    try:

        def url_input(server: InferenceServer, value: str) -> requests.Response:
            return infer(server.url, model_id=DETECTOR, image={"type": "url", "value": value})

        refused(url_input(off, f"{base}/image.png"), 400, "InputNotAllowedError", "ALLOW_URL_INPUT")
        refused(url_input(strict, f"{base}/image.png"), 400, "InputNotAllowedError", "https")
        refused(url_input(loose, "ftp://127.0.0.1/x.png"), 400, "InputNotAllowedError", "http(s)")
        refused(url_input(loose, f"{base}/to-file"), 400, "InputNotAllowedError")
        refused(url_input(loose, f"{base}/missing"), 400, "ImageDownloadError", "404")
        expected = comparable(get_model(DETECTOR).infer(FRAME))
        assert comparable(url_input(loose, f"{base}/to-image").json()) == expected  # same-scheme redirect followed
        _Redirects.payload = png(np.random.default_rng(1).integers(0, 255, (300, 300, 3), np.uint8))
        refused(url_input(loose, f"{base}/image.png"), 413, "ImageTooLargeError")
        with silent_server() as port:
            started = time.monotonic()
            refused(url_input(loose, f"http://127.0.0.1:{port}/x.png"), 400, "ImageDownloadError", "within")
            assert time.monotonic() - started < 10
    finally:
        for server in (strict, off, loose):
            server.stop()
        files.shutdown()
        files.server_close()


def test_a_failing_request_does_not_affect_others(open_server: InferenceServer) -> None:
    url = open_server.url
    expected = comparable(get_model(DETECTOR).infer(FRAME))
    bad = {"model_id": DETECTOR, "image": {"type": "base64", "value": "garbage"}}

    def ask(index: int) -> tuple[int, Any]:
        answer = infer(url, **(bad if index % 2 else body(DETECTOR, FRAME)))
        return answer.status_code, answer.json()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(ask, range(16)))
    for index, (status, payload) in enumerate(results):
        if index % 2:
            assert status == 400 and payload["error_type"] == "InvalidImageError"
        else:
            assert status == 200 and comparable(payload) == expected
