"""framepipe.client against the real server (``framepipe serve``'s app on uvicorn on 127.0.0.1), API v1
and v0: load, list, infer one and many images of each task, unload, clear; a model downloaded on first
use from a registry on 127.0.0.1; every result equal to ``get_model(...).infer`` on the same images;
client-side downsizing; a server with API keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from framepipe.client import (
    HTTPCallErrorError,
    InferenceConfiguration,
    InferenceHTTPClient,
    ModelNotInitializedError,
)
from framepipe.models import get_model
from tests.test_client_support import DETECTOR, DOWNLOADED, PARAMETERS, SECRET, TASKS, World, same, world

CONFIG_NAMES = {"confidence": "confidence_threshold", "keypoint_confidence": "keypoint_confidence_threshold"}
CONFIG_NAMES["iou_threshold"] = "iou_threshold"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, clip: Any) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("client-server"), clip.video_path) as running:
        yield running


def jpeg(image: np.ndarray) -> np.ndarray:
    """``image`` after a JPEG round trip (how the client sends a numpy image)."""
    decoded = cv2.imdecode(cv2.imencode(".jpg", image)[1], cv2.IMREAD_COLOR)
    assert decoded is not None
    return decoded


def configuration(task: str, **extra: Any) -> InferenceConfiguration:
    fields = {CONFIG_NAMES[name]: value for name, value in PARAMETERS[task].items()}
    return InferenceConfiguration(**fields, retry_backoff_s=0.05, **extra)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_api_v1_each_task_one_and_many_equal_get_model(env: World, task: str) -> None:
    model_id, params = TASKS[task], PARAMETERS[task]
    client = InferenceHTTPClient(env.server.url, api_key=SECRET)
    client.configure(configuration(task, max_batch_size=2, max_concurrent_requests=2))
    model = get_model(model_id)
    one = client.infer(str(env.paths[0]), model_id=model_id)
    assert same(one, model.infer(env.frames[0], **params))
    many = client.infer([str(p) for p in env.paths], model_id=model_id)  # batches of 2, two in flight
    assert isinstance(many, list) and len(many) == len(env.paths)
    assert same(many, model.infer(env.frames, **params))
    if task == "object-detection":
        assert any(r["predictions"] for r in many)  # real detections compared, not empty lists
    # a numpy frame travels as JPEG, as in inference_sdk: the server sees the decoded JPEG
    assert same(client.infer(env.frames[1], model_id=model_id), model.infer(jpeg(env.frames[1]), **params))


@pytest.mark.parametrize("task", sorted(TASKS))
def test_api_v0_each_task_equal_get_model(env: World, task: str) -> None:
    model_id, params = TASKS[task], PARAMETERS[task]
    client = InferenceHTTPClient(env.server.url, api_key=SECRET).select_api_v0()
    client.configure(configuration(task, max_concurrent_requests=3))
    model = get_model(model_id)
    many = client.infer([str(p) for p in env.paths], model_id=model_id)
    assert same(many, model.infer(env.frames, **params))
    assert same(client.infer(str(env.paths[2]), model_id=model_id), model.infer(env.frames[2], **params))


def test_load_list_describe_unload_clear(env: World) -> None:
    client = InferenceHTTPClient(env.server.url, api_key=SECRET)
    loaded = client.load_model(TASKS["classification"])
    assert TASKS["classification"] in [m.model_id for m in loaded.models]
    described = client.get_model_description(TASKS["keypoint-detection"])  # not loaded: loaded now
    assert (described.task_type, described.input_width, described.input_height) == ("keypoint-detection", 640, 640)
    listed = [m.model_id for m in client.list_loaded_models().models]
    assert {TASKS["classification"], TASKS["keypoint-detection"]} <= set(listed)
    client.select_model(TASKS["classification"])
    after = client.unload_model(TASKS["classification"])
    assert TASKS["classification"] not in [m.model_id for m in after.models] and client.selected_model is None
    with pytest.raises(ModelNotInitializedError):
        client.get_model_description(TASKS["classification"], allow_loading=False)
    assert client.unload_all_models().models == [] and client.list_loaded_models().models == []
    assert client.get_server_info().version


def test_a_model_downloaded_on_first_use_from_the_registry(env: World) -> None:
    before = env.registry.count("ort", model_id=DOWNLOADED)
    client = InferenceHTTPClient(env.server.url, api_key=SECRET).configure(configuration("object-detection"))
    result = client.infer(str(env.paths[0]), model_id=DOWNLOADED)
    assert env.registry.count("ort", model_id=DOWNLOADED) == before + 1  # asked the registry once
    assert (env.cache / "reg-det" / "3" / "weights.onnx").is_file()
    assert same(result, get_model(DOWNLOADED).infer(env.frames[0], **PARAMETERS["object-detection"]))
    assert result["predictions"]


def test_unknown_model_is_a_404_with_the_servers_message(env: World) -> None:
    client = InferenceHTTPClient(env.server.url, api_key=SECRET)
    with pytest.raises(HTTPCallErrorError) as caught:
        client.infer(str(env.paths[0]), model_id="no-such-model/7")
    assert caught.value.status_code == 404 and caught.value.api_message
    assert SECRET not in str(caught.value) and SECRET not in caught.value.api_message


def test_client_downsizing_scales_predictions_back(env: World) -> None:
    big = cv2.resize(env.frames[0], (1280, 720), interpolation=cv2.INTER_LINEAR)
    client = InferenceHTTPClient(env.server.url, api_key=SECRET)
    client.configure(configuration("object-detection", client_downsizing_disabled=False))
    result = client.infer(big, model_id=DETECTOR)
    description = client.get_model_description(DETECTOR)
    assert (description.input_width, description.input_height) == (320, 192)  # so sent as 320x180
    sent = jpeg(cv2.resize(big, (320, 180), interpolation=cv2.INTER_AREA))
    expected = get_model(DETECTOR).infer(sent, **PARAMETERS["object-detection"])
    assert result["image"] == {"width": 1280, "height": 720} and len(result["predictions"]) > 0
    assert len(result["predictions"]) == len(expected["predictions"])
    for got, want in zip(result["predictions"], expected["predictions"], strict=True):
        assert got["class"] == want["class"]
        for key in ("x", "y", "width", "height"):
            assert got[key] == pytest.approx(want[key] * 4, abs=1e-3)


def test_a_server_with_api_keys(tmp_path: Path, clip: Any) -> None:
    with world(tmp_path, clip.video_path, count=1, api_keys=("server-key-1",)) as keyed:
        without = InferenceHTTPClient(keyed.server.url, api_key="wrong-key")
        with pytest.raises(HTTPCallErrorError) as caught:
            without.list_loaded_models()
        assert caught.value.status_code == 401 and "wrong-key" not in str(caught.value)
        for transport in ("legacy", "header"):
            client = InferenceHTTPClient(keyed.server.url, api_key="server-key-1")
            client.configure(InferenceConfiguration(api_key_transport=transport))
            result = client.infer(str(keyed.paths[0]), model_id=DETECTOR)
            assert same(result, get_model(DETECTOR).infer(keyed.frames[0]))


def test_infer_async_many_callers(env: World) -> None:
    import asyncio

    client = InferenceHTTPClient(env.server.url, api_key=SECRET).configure(configuration("object-detection"))

    async def main() -> list[Any]:
        calls = [client.infer_async(str(p), model_id=DETECTOR) for p in env.paths * 2]
        return await asyncio.gather(*calls)

    results = asyncio.run(main())
    expected = get_model(DETECTOR).infer(env.frames, **PARAMETERS["object-detection"])
    assert same(results, expected * 2)
    assert np.isfinite([p["x"] for r in results for p in r["predictions"]]).all()
