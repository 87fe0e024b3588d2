"""framepipe.client against a scripted HTTP server on 127.0.0.1: the sliding request pool, the
retries and their backoff, batches, API v0 and v1 request shapes, the API key's transports,
client-side downsizing and the inputs ``infer`` takes.

The server here is a real one (a socket, HTTP/1.1, real JPEG bodies decoded with OpenCV), but
scripted: it answers 503 on demand, holds a request until others have arrived, and counts what
it saw, which ``framepipe serve`` cannot be made to do. The client against the real server is in
tests/test_client_server.py."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np
import pytest

from framepipe.client import (
    HTTPCallErrorError,
    HTTPClientError,
    HTTPServerConnectionError,
    InferenceConfiguration,
    InferenceHTTPClient,
    InvalidInputFormatError,
    InvalidModelIdentifier,
    ModelNotSelectedError,
    ModelTaskTypeNotSupportedError,
    WrongClientModeError,
)

KEY = "sk-client-test-2b9d41"


def frame(index: int, height: int = 30) -> np.ndarray:
    """A BGR image whose width tells the server which one it is (40 + index)."""
    image = np.full((height, 40 + index, 3), 90, np.uint8)
    image[:, :5] = (0, 0, 255)
    return image


class Scripted:
    """What the server does and what it saw."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.statuses: list[int] = []  # answered in turn before the normal answer, e.g. [503, 503]
        self.retry_after: str | None = None
        self.task = "object-detection"
        self.input_wh = (640, 640)
        self.hold: Callable[[int], None] | None = None  # called with each image's index before answering
        self.image_bytes = cv2.imencode(".jpg", frame(7))[1].tobytes()

    def registry(self) -> dict[str, Any]:
        model = {"model_id": "shapes/1", "task_type": self.task, "batch_size": 8}
        model.update(input_width=self.input_wh[0], input_height=self.input_wh[1])
        return {"models": [model]}


def decode(value: str) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(base64.b64decode(value), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def answer_for(image: np.ndarray, task: str) -> dict[str, Any]:
    """A box in the middle of the image as the server got it, a quarter of its size."""
    height, width = image.shape[:2]
    box = {"x": width / 2, "y": height / 2, "width": width / 4, "height": height / 4, "class": "a"}
    box["index"] = width - 40
    if task == "instance-segmentation":
        box["points"] = [{"x": width / 4, "y": height / 4}, {"x": width / 2, "y": height / 2}]
    if task == "keypoint-detection":
        box["keypoints"] = [{"x": width / 8, "y": height / 8, "confidence": 0.9}]
    return {"image": {"width": width, "height": height}, "predictions": [box]}


@pytest.fixture
def server() -> Iterator[tuple[str, Scripted]]:
    script = Scripted()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def reply(self, status: int, body: Any, content_type: str = "application/json") -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            if status in (429, 503) and script.retry_after:
                self.send_header("Retry-After", script.retry_after)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self.handle_request(b"")

        def do_POST(self) -> None:
            self.handle_request(self.rfile.read(int(self.headers.get("Content-Length", 0))))

        def handle_request(self, raw: bytes) -> None:
            url = urlsplit(self.path)
            record: dict[str, Any] = {
                "method": self.command,
                "path": url.path,
                "query": parse_qs(url.query),
                "raw": raw,
            }
            record["headers"] = dict(self.headers)
            record["time"] = time.monotonic()
            with script.lock:
                script.seen.append(record)
                status = script.statuses.pop(0) if script.statuses else 200
                script.in_flight += 1
                script.max_in_flight = max(script.max_in_flight, script.in_flight)
            try:
                if status != 200:
                    self.reply(status, {"message": f"scripted {status}, key {KEY}"})
                elif url.path == "/info" and script.task == "not-json":
                    self.reply(200, b"<html>a proxy page</html>", "text/html")
                elif url.path == "/image.jpg":
                    self.reply(200, script.image_bytes, "image/jpeg")
                elif url.path in ("/model/registry", "/model/add"):
                    self.reply(200, script.registry())
                elif url.path.startswith("/infer/"):
                    body = json.loads(raw)
                    record["json"] = body
                    images = body["image"] if isinstance(body["image"], list) else [body["image"]]
                    answers = [answer_for(decode(i["value"]), script.task) for i in images]
                    for answer in answers:
                        if script.hold is not None:
                            script.hold(answer["predictions"][0]["index"])
                    self.reply(200, answers if isinstance(body["image"], list) else answers[0])
                elif url.path == "/shapes/1":  # API v0: the raw base64 image is the body
                    answer = answer_for(decode(raw.decode()), script.task)
                    if record["query"].get("format") == ["image"]:
                        self.reply(200, cv2.imencode(".jpg", frame(3))[1].tobytes(), "image/jpeg")
                    else:
                        self.reply(200, answer)
                else:
                    self.reply(404, {"message": "no such route"})
            finally:
                with script.lock:
                    script.in_flight -= 1

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    finally:
        httpd.shutdown()
        httpd.server_close()


def client_for(url: str, **config: Any) -> InferenceHTTPClient:
    config.setdefault("retry_backoff_s", 0.01)
    return InferenceHTTPClient(url, api_key=KEY).configure(InferenceConfiguration(**config))


def infer_requests(script: Scripted) -> list[dict[str, Any]]:
    return [r for r in script.seen if r["path"].startswith("/infer/")]


def test_the_pool_slides_a_slow_request_does_not_hold_the_next_ones(server) -> None:
    url, script = server
    others_done = threading.Event()
    finished: list[int] = []
    released: list[bool] = []

    def hold(index: int) -> None:
        # image 0 waits until images 2, 3 and 4 were answered: in waves of two (inference_sdk)
        # image 2 could only start after image 0 ended, so this would time out
        if index == 0:
            released.append(others_done.wait(10))
        else:
            with script.lock:
                finished.append(index)
                if {2, 3, 4} <= set(finished):
                    others_done.set()

    script.hold = hold
    client = client_for(url, max_concurrent_requests=2)
    results = client.infer([frame(i) for i in range(6)], model_id="shapes/1")
    assert released == [True], "image 2 did not start while image 0 was still in flight: waves, not a sliding pool"
    assert [r["predictions"][0]["index"] for r in results] == list(range(6))  # input order kept
    assert len(infer_requests(script)) == 6 and script.max_in_flight <= 2 + 1  # +1: the registry request


def test_never_more_requests_in_flight_than_allowed(server) -> None:
    url, script = server
    gate = threading.Barrier(3, timeout=10)
    script.hold = lambda index: gate.wait() if index < 3 else None  # three at once, then free
    client = client_for(url, max_concurrent_requests=3)
    results = client.infer([frame(i) for i in range(9)], model_id="shapes/1")
    assert len(results) == 9 and script.max_in_flight == 3


def test_batches_of_max_batch_size_images(server) -> None:
    url, script = server
    results = client_for(url, max_batch_size=3).infer([frame(i) for i in range(7)], model_id="shapes/1")
    sizes = [len(r["json"]["image"]) if isinstance(r["json"]["image"], list) else 1 for r in infer_requests(script)]
    assert sizes == [3, 3, 1]
    assert [r["predictions"][0]["index"] for r in results] == list(range(7))


def test_one_image_gives_a_dict_a_list_gives_a_list_an_empty_list_is_refused(server) -> None:
    url, _ = server
    client = client_for(url).select_model("shapes/1")
    assert isinstance(client.infer(frame(1)), dict)
    assert isinstance(client.infer([frame(1)]), dict)  # inference_sdk unwraps a list of one
    assert isinstance(client.infer([frame(1), frame(2)]), list)
    with pytest.raises(InvalidInputFormatError, match="no image given"):
        client.infer([])


def test_503_twice_then_success_with_doubling_backoff(server) -> None:
    url, script = server
    script.statuses = [503, 503]
    client = client_for(url, retry_backoff_s=0.1)
    client.get_server_info  # noqa: B018 - nothing sent yet
    result = client.infer(frame(2), model_id="shapes/1")
    assert result["predictions"][0]["index"] == 2
    tries = [r["time"] for r in script.seen]
    assert len(tries) == 4  # the registry request twice refused, then answered; then the image
    assert tries[1] - tries[0] >= 0.1 and tries[2] - tries[1] >= 0.2


def test_retry_after_is_honoured_within_the_cap(server) -> None:
    url, script = server
    script.statuses, script.retry_after = [429], "0.3"
    client_for(url, retry_backoff_s=0.01, retry_backoff_max_s=5).list_loaded_models()
    assert script.seen[1]["time"] - script.seen[0]["time"] >= 0.3


@pytest.mark.parametrize("status", [429, 503, 504])
def test_retryable_status_gives_up_after_the_attempts(server, status: int) -> None:
    url, script = server
    script.statuses = [status] * 10
    with pytest.raises(HTTPCallErrorError) as caught:
        client_for(url, retry_attempts=3).list_loaded_models()
    assert caught.value.status_code == status and len(script.seen) == 3
    assert KEY not in str(caught.value) and KEY not in (caught.value.api_message or "")


def test_other_errors_are_not_retried_and_carry_the_servers_message(server) -> None:
    url, script = server
    script.statuses = [500]
    with pytest.raises(HTTPCallErrorError) as caught:
        client_for(url).load_model("shapes/1")
    assert len(script.seen) == 1 and caught.value.status_code == 500
    message = caught.value.api_message or ""
    assert "scripted 500" in message and "***" in message
    assert "POST /model/add" in caught.value.description


def test_an_answer_that_is_not_json(server) -> None:
    url, script = server
    script.task = "not-json"
    with pytest.raises(HTTPClientError, match="GET /info answered HTTP 200 without JSON"):
        client_for(url).get_server_info()


def test_a_server_that_is_not_there(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = client_for(f"http://127.0.0.1:{port}", retry_attempts=2)
    started = time.monotonic()
    with pytest.raises(HTTPServerConnectionError, match="after 2 tries"):
        client.get_server_info()
    assert time.monotonic() - started < 10


def test_api_v1_body_and_parameters(server) -> None:
    url, script = server
    config = {"confidence_threshold": 0.6, "iou_threshold": 0.2, "max_detections": 7, "class_filter": ["a"]}
    client_for(url, **config).infer(frame(1), model_id="shapes/1")
    body = infer_requests(script)[0]["json"]
    assert body["model_id"] == "shapes/1" and body["api_key"] == KEY and body["image"]["type"] == "base64"
    assert (body["confidence"], body["iou_threshold"], body["max_detections"], body["class_filter"]) == (
        0.6,
        0.2,
        7,
        ["a"],
    )
    assert [r["path"] for r in script.seen] == ["/model/registry", "/infer/object_detection"]


@pytest.mark.parametrize(
    ("task", "route"),
    [
        ("instance-segmentation", "/infer/instance_segmentation"),
        ("classification", "/infer/classification"),
        ("keypoint-detection", "/infer/keypoints_detection"),
    ],
)
def test_the_route_comes_from_the_models_task(server, task: str, route: str) -> None:
    url, script = server
    script.task = task
    client_for(url).infer(frame(1), model_id="shapes/1")
    assert infer_requests(script)[0]["path"] == route


def test_a_task_without_a_route(server) -> None:
    url, script = server
    script.task = "semantic-segmentation"
    with pytest.raises(ModelTaskTypeNotSupportedError):
        client_for(url).infer(frame(1), model_id="shapes/1")


def test_api_key_transports(server) -> None:
    url, script = server
    client_for(url, api_key_transport="header").infer(frame(1), model_id="shapes/1")
    client_for(url, api_key_transport="both").list_loaded_models()
    header_only, both = infer_requests(script)[0], script.seen[-1]
    assert "api_key" not in header_only["json"] and header_only["headers"]["Authorization"] == f"Bearer {KEY}"
    assert not any("api_key" in r["query"] for r in script.seen[:2])
    assert both["query"]["api_key"] == [KEY] and both["headers"]["Authorization"] == f"Bearer {KEY}"


def test_api_v0_one_image_a_request_raw_base64_body_legacy_parameters(server) -> None:
    url, script = server
    client = client_for(url, confidence_threshold=0.5, iou_threshold=0.25, max_batch_size=8).select_api_v0()
    results = client.infer([frame(1), frame(2)], model_id="shapes/1")
    assert [r["predictions"][0]["index"] for r in results] == [1, 2]
    v0 = [r for r in script.seen if r["path"] == "/shapes/1"]
    assert len(v0) == 2 and len(script.seen) == 2  # no registry call in v0
    assert v0[0]["query"]["api_key"] == [KEY] and v0[0]["query"]["overlap"] == ["0.25"]
    assert v0[0]["query"]["confidence"] == ["0.5"]
    with pytest.raises(WrongClientModeError):
        client.list_loaded_models()
    with pytest.raises(InvalidModelIdentifier):
        client.infer(frame(1), model_id="shapes-1")


def test_api_v0_image_format_becomes_a_numpy_visualisation(server) -> None:
    url, _ = server
    from framepipe.client import VisualisationResponseFormat

    client = client_for(url, format="image", output_visualisation_format=VisualisationResponseFormat.NUMPY)
    result = client.select_api_v0().infer(frame(1), model_id="shapes/1")
    assert set(result) == {"visualization"} and result["visualization"].shape == (30, 43, 3)


@pytest.mark.parametrize("task", ["object-detection", "instance-segmentation", "keypoint-detection"])
def test_client_downsizing_scales_predictions_back(server, task: str) -> None:
    url, script = server
    script.task, script.input_wh = task, (320, 320)
    image = np.zeros((720, 1280, 3), np.uint8)
    result = client_for(url, client_downsizing_disabled=False).infer(image, model_id="shapes/1")
    sent = decode(infer_requests(script)[0]["json"]["image"]["value"])
    assert sent.shape[:2] == (180, 320)  # fits 320x320, aspect ratio kept
    box = result["predictions"][0]
    assert result["image"] == {"width": 1280, "height": 720}
    assert (box["x"], box["y"], box["width"], box["height"]) == (640, 360, 320, 180)
    if task == "instance-segmentation":
        assert box["points"] == [{"x": 320, "y": 180}, {"x": 640, "y": 360}]
    if task == "keypoint-detection":
        assert (box["keypoints"][0]["x"], box["keypoints"][0]["y"]) == (160, 90)


def test_no_downsizing_by_default_or_for_small_images(server) -> None:
    url, script = server
    script.input_wh = (320, 320)
    client_for(url).infer(np.zeros((720, 1280, 3), np.uint8), model_id="shapes/1")
    client_for(url, client_downsizing_disabled=False).infer(frame(5), model_id="shapes/1")
    sizes = [decode(r["json"]["image"]["value"]).shape[:2] for r in infer_requests(script)]
    assert sizes == [(720, 1280), (30, 45)]


def test_every_kind_of_input(server, tmp_path: Path) -> None:
    from PIL import Image

    url, _ = server
    path = tmp_path / "four.png"
    cv2.imwrite(str(path), frame(4))
    png = path.read_bytes()
    pil = Image.fromarray(cv2.cvtColor(frame(6), cv2.COLOR_BGR2RGB))
    inputs = [str(path), path, png, base64.b64encode(png).decode(), pil, frame(5), f"{url}/image.jpg"]
    results = client_for(url, max_concurrent_requests=4).infer(inputs, model_id="shapes/1")
    assert [r["predictions"][0]["index"] for r in results] == [4, 4, 4, 4, 6, 5, 7]
    with pytest.raises(InvalidInputFormatError, match="neither an existing file"):
        client_for(url).infer(str(tmp_path / "missing.jpg"), model_id="shapes/1")
    with pytest.raises(InvalidInputFormatError, match="Unknown type of input"):
        client_for(url).infer(12, model_id="shapes/1")


def test_selected_model_use_model_and_unload(server) -> None:
    url, _ = server
    client = client_for(url)
    with pytest.raises(ModelNotSelectedError):
        client.infer(frame(1))
    with client.use_model("shapes/1"):
        assert client.infer(frame(1))["predictions"][0]["index"] == 1
    assert client.selected_model is None
    client.load_model("shapes/1", set_as_default=True)
    assert client.selected_model == "shapes/1"
    with client.use_api_v0():
        assert client.client_mode.value == "v0"
    assert client.client_mode.value == "v1" and KEY not in repr(client)


def test_infer_async_runs_calls_concurrently(server) -> None:
    url, script = server
    gate = threading.Barrier(3, timeout=10)  # all three must be in the server at once
    script.hold = lambda index: gate.wait()
    client = client_for(url)
    client.load_model("shapes/1")

    async def main() -> list[Any]:
        return await asyncio.gather(*(client.infer_async(frame(i), model_id="shapes/1") for i in range(3)))

    results = asyncio.run(main())
    assert [r["predictions"][0]["index"] for r in results] == [0, 1, 2]


def test_importing_the_client_needs_neither_onnxruntime_nor_fastapi() -> None:
    code = """
import sys
BLOCKED = ("onnxruntime", "fastapi", "uvicorn", "starlette", "av")
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked in this test")
        return None
sys.meta_path.insert(0, Block())
from framepipe.client import InferenceConfiguration, InferenceHTTPClient
client = InferenceHTTPClient("http://127.0.0.1:9").configure(InferenceConfiguration(max_concurrent_requests=2))
heavy = ("framepipe.models", "framepipe.server")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED or m.startswith(heavy))
print("LOADED", loaded)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "LOADED []" in done.stdout
