"""The inference server's routes on a real uvicorn on 127.0.0.1, driven with ``requests``: every task's
``/infer`` route (one image and lists) answers what ``get_model(...).infer`` gives on the same images,
the model routes answer Roboflow's ``ModelsDescriptions``, the legacy route takes base64 bodies,
multipart files and URLs, and ``--registry-root`` serves the registry in the same app."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import cv2
import numpy as np
import pytest
import requests

from framepipe.artifacts.registry_folder import add_model
from framepipe.models import get_model
from framepipe.server import InferenceServer, ServerSettings
from tests.test_server_support import body, clip_frames, comparable, png, task_cache

DETECTOR = "framepipe-shapes/1"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("server-cache")
    task_cache(root)
    old = os.environ.get("MODEL_CACHE_DIR")
    os.environ["MODEL_CACHE_DIR"] = str(root)
    yield root
    if old is None:
        os.environ.pop("MODEL_CACHE_DIR", None)
    else:
        os.environ["MODEL_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def server(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InferenceServer]:
    registry = tmp_path_factory.mktemp("registry-root")
    settings = ServerSettings(allow_non_https_url_input=True)
    with InferenceServer(port=0, settings=settings, registry_root=registry) as running:
        yield running


@pytest.fixture(scope="module")
def frames(clip: Any) -> list[np.ndarray]:
    return clip_frames(clip.video_path, 3)


ROUTES = [
    ("object_detection", DETECTOR, {"confidence": 0.3, "iou_threshold": 0.5}),
    ("instance_segmentation", "fp-seg/1", {"mask_decode_mode": "fast"}),
    ("keypoints_detection", "fp-pose/1", {"keypoint_confidence": 0.5}),
    ("classification", "fp-cls/1", {"confidence": 0.15}),
]


@pytest.mark.parametrize(("route", "model_id", "params"), ROUTES)
def test_each_task_route_equals_get_model_infer(
    server: InferenceServer, frames: list[np.ndarray], route: str, model_id: str, params: dict[str, Any]
) -> None:
    url = f"{server.url}/infer/{route}"
    one = requests.post(url, json=body(model_id, frames[0], **params), timeout=60)
    assert one.status_code == 200, one.text
    model = get_model(model_id)
    assert comparable(one.json()) == comparable(model.infer(frames[0], **params))
    many = requests.post(url, json=body(model_id, frames, **params), timeout=60)
    assert many.status_code == 200, many.text
    answers = many.json()
    assert isinstance(answers, list) and len(answers) == len(frames)
    assert [comparable(a) for a in answers] == [comparable(r) for r in model.infer(frames, **params)]
    if route == "object_detection":
        assert any(a["predictions"] for a in answers)  # real detections, not an empty comparison


def test_models_routes(server: InferenceServer) -> None:
    added = requests.post(f"{server.url}/model/add", json={"model_id": "fp-cls/1"}, timeout=60).json()
    described = {m["model_id"]: m for m in added["models"]}
    assert described["fp-cls/1"] == {
        "model_id": "fp-cls/1",
        "task_type": "classification",
        "batch_size": None,
        "input_height": 640,
        "input_width": 640,
        "vram_bytes": None,
        "request_aliases": [],
        "request_paths": ["/infer/classification"],
    }
    assert set(added) >= {"models", "total_vram_bytes", "gpu_memory_used"}
    listed = requests.get(f"{server.url}/model/registry", timeout=10).json()
    assert "fp-cls/1" in [m["model_id"] for m in listed["models"]]
    removed = requests.post(f"{server.url}/model/remove", json={"model_id": "fp-cls/1"}, timeout=10).json()
    assert "fp-cls/1" not in [m["model_id"] for m in removed["models"]]
    again = requests.post(f"{server.url}/model/remove", json={"model_id": "fp-cls/1"}, timeout=10)
    assert again.status_code == 404 and "message" in again.json()
    requests.post(f"{server.url}/model/add", json={"model_id": "fp-pose/1"}, timeout=60)
    cleared = requests.post(f"{server.url}/model/clear", timeout=10).json()
    assert "fp-pose/1" not in [m["model_id"] for m in cleared["models"]]


def test_info_health_readiness_metrics(server: InferenceServer, frames: list[np.ndarray]) -> None:
    info = requests.get(f"{server.url}/info", timeout=10).json()
    assert info["name"] and info["version"] and info["uuid"]
    assert requests.get(f"{server.url}/healthz", timeout=10).json() == {"status": "healthy"}
    assert requests.get(f"{server.url}/readiness", timeout=10).json() == {"status": "ready"}
    requests.post(f"{server.url}/infer/object_detection", json=body(DETECTOR, frames[0]), timeout=60)
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    assert (
        'framepipe_server_requests_total{route="/infer/object_detection",model="framepipe-shapes/1",status="200"}'
        in text
    )
    assert 'framepipe_server_request_duration_seconds_bucket{route="/infer/object_detection"' in text
    assert 'framepipe_model_batch_size_count{model="framepipe-shapes/1"}' in text
    assert "framepipe_model_queue_depth" in text and "framepipe_server_loaded_models" in text


class _Files(BaseHTTPRequestHandler):
    payload = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, *args: Any) -> None:
        pass


def test_legacy_route(server: InferenceServer, frames: list[np.ndarray]) -> None:
    model = get_model(DETECTOR)
    expected = comparable(model.infer(frames[0], confidence=0.5, iou_threshold=0.3))
    encoded = base64.b64encode(png(frames[0]))
    url = f"{server.url}/{DETECTOR}"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    as_base64 = requests.post(f"{url}?confidence=50&overlap=30", data=encoded, headers=headers, timeout=60)
    assert as_base64.status_code == 200 and comparable(as_base64.json()) == expected
    as_file = requests.post(f"{url}?confidence=0.5", files={"file": ("f.png", png(frames[0]))}, timeout=60)
    assert comparable(as_file.json()) == expected
    no_type = requests.post(url, data=encoded, headers={"Content-Type": ""}, timeout=10)
    assert no_type.status_code == 422 and "Content-Type" in no_type.json()["message"]
    image = requests.post(f"{url}?confidence=50&format=image", data=encoded, headers=headers, timeout=60)
    assert image.headers["content-type"] == "image/jpeg"
    decoded = cv2.imdecode(np.frombuffer(image.content, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape == frames[0].shape
    both = requests.post(f"{url}?confidence=50&format=image_and_json", data=encoded, headers=headers, timeout=60)
    assert comparable(both.json()) == expected and both.json()["visualization"]
    _Files.payload = png(frames[0])
    files = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    Thread(target=files.serve_forever, daemon=True).start()
    try:
        image_url = f"http://127.0.0.1:{files.server_address[1]}/frame.png"
        by_url = requests.get(url, params={"image": image_url, "confidence": "50"}, timeout=60)
        assert by_url.status_code == 200 and comparable(by_url.json()) == expected
        in_json = requests.post(
            f"{server.url}/infer/object_detection",
            json={"model_id": DETECTOR, "confidence": 0.5, "image": {"type": "url", "value": image_url}},
            timeout=60,
        )
        assert comparable(in_json.json()) == expected
    finally:
        files.shutdown()
        files.server_close()


def test_stub_model(server: InferenceServer, frames: list[np.ndarray]) -> None:
    stub = requests.post(f"{server.url}/infer/object_detection", json=body("anything/0", frames[0]), timeout=60)
    assert stub.status_code == 200 and stub.json()["predictions"] == []


def test_registry_routes_in_the_same_app(
    server: InferenceServer, cache: Path, frames: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert server.registry is not None
    add_model(server.registry.root, cache / "fp-cls" / "1", "reg-cls/2")
    answer = requests.get(f"{server.url}/ort/reg-cls/2", timeout=10)
    assert answer.status_code == 200 and answer.json()["ort"]["model"].startswith(server.url + "/files/")
    missing = requests.get(f"{server.url}/ort/nothing/1", timeout=10)
    assert missing.status_code == 404 and "error" in missing.json()  # the registry's own error shape
    # one box hosts models and inference: the server downloads reg-cls/2 from its own registry
    monkeypatch.setenv("API_BASE_URL", server.url)
    inferred = requests.post(f"{server.url}/infer/classification", json=body("reg-cls/2", frames[0]), timeout=60)
    assert inferred.status_code == 200, inferred.text
    assert inferred.json()["top"] == "b"
    assert (cache / "reg-cls" / "2" / "weights.onnx").is_file()


@pytest.mark.parametrize(
    ("model_id", "query", "params"),
    [
        ("fp-cls/1", {"confidence": "15"}, {"confidence": 0.15}),
        (
            "fp-seg/1",
            {"confidence": "0.5", "mask_decode_mode": "fast"},
            {"confidence": 0.5, "mask_decode_mode": "fast"},
        ),
        (
            "fp-pose/1",
            {"keypoint_confidence": "0.5", "overlap": "50"},
            {"keypoint_confidence": 0.5, "iou_threshold": 0.5},
        ),
    ],
)
def test_legacy_route_reads_each_task_s_parameters(
    server: InferenceServer, frames: list[np.ndarray], model_id: str, query: dict, params: dict
) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    answer = requests.post(
        f"{server.url}/{model_id}", params=query, data=base64.b64encode(png(frames[1])), headers=headers, timeout=60
    )
    assert answer.status_code == 200, answer.text
    assert comparable(answer.json()) == comparable(get_model(model_id).infer(frames[1], **params))
