"""Roboflow's own ``inference-sdk`` package against ``framepipe serve``'s app (uvicorn on 127.0.0.1),
API v1 and v0: load, list, infer one and many images of each task, unload, clear; a model downloaded
on first use from a registry on 127.0.0.1; every result equal to ``get_model(...).infer``.

inference-sdk pins numpy, OpenCV and Pillow versions that differ from framepipe's, so it lives in its
own virtual environment, ``.venv-sdk`` (``scripts/test.sh`` makes it), and the SDK code runs there, in
a subprocess. Without that environment the test is skipped, unless ``FRAMEPIPE_REQUIRE_SDK`` is set
(as ``scripts/test.sh`` does): then it fails, so that CI never skips it silently."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from framepipe.models import get_model
from tests.test_client_support import PARAMETERS, SECRET, TASKS, World, same, world

REPO = Path(__file__).resolve().parent.parent
SDK_PYTHON = REPO / ".venv-sdk" / "bin" / "python"
SDK_NAMES = {"confidence": "confidence_threshold", "keypoint_confidence": "keypoint_confidence_threshold"}
SDK_NAMES["iou_threshold"] = "iou_threshold"

SCRIPT = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
import inference_sdk
from inference_sdk import InferenceConfiguration, InferenceHTTPClient

plan = json.loads(sys.argv[1])
out = {"version": inference_sdk.__version__ if hasattr(inference_sdk, "__version__") else "?"}

def ids(registered):
    return sorted(m.model_id for m in registered.models)

def configured(client, task, **extra):
    fields = dict(plan["parameters"][task], api_key_transport="legacy", **extra)
    return client.configure(InferenceConfiguration(**fields))

client = InferenceHTTPClient(api_url=plan["url"], api_key=plan["key"])
v1 = out["v1"] = {"mode": client.client_mode.value, "cleared_first": ids(client.unload_all_models())}
for task, model_id in plan["tasks"].items():
    v1[task] = {"loaded": ids(client.load_model(model_id))}
    configured(client, task, max_batch_size=2, max_concurrent_requests=2)
    v1[task]["one"] = client.infer(plan["paths"][0], model_id=model_id)
    v1[task]["many"] = client.infer(plan["paths"], model_id=model_id)
v1["listed"] = ids(client.list_loaded_models())
v1["description"] = client.get_model_description(plan["tasks"]["keypoint-detection"]).to_dict()
v1["unloaded"] = ids(client.unload_model(plan["tasks"]["classification"]))
configured(client, "object-detection")
v1["downloaded"] = client.infer(plan["paths"][0], model_id=plan["downloaded"])
v1["cleared"] = ids(client.unload_all_models())

client = InferenceHTTPClient(api_url=plan["url"], api_key=plan["key"]).select_api_v0()
v0 = out["v0"] = {"mode": client.client_mode.value}
for task, model_id in plan["tasks"].items():
    configured(client, task, max_concurrent_requests=2)
    v0[task] = {"one": client.infer(plan["paths"][0], model_id=model_id)}
    v0[task]["many"] = client.infer(plan["paths"], model_id=model_id)
with open(plan["out"], "w") as file:
    json.dump(out, file)
"""


def sdk_python() -> Path:
    if SDK_PYTHON.is_file():
        return SDK_PYTHON
    if os.environ.get("FRAMEPIPE_REQUIRE_SDK"):
        pytest.fail(f"FRAMEPIPE_REQUIRE_SDK is set but {SDK_PYTHON} is missing: run bash scripts/test.sh to make it")
    pytest.skip(f"Roboflow's inference-sdk needs its own environment, {SDK_PYTHON} (scripts/test.sh makes it)")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, clip: Any) -> Iterator[World]:
    sdk_python()
    with world(tmp_path_factory.mktemp("sdk"), clip.video_path, downloaded="reg-sdk/4") as running:
        yield running


@pytest.fixture(scope="module")
def results(env: World, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("sdk-out") / "results.json"
    plan = {
        "url": env.server.url,
        "key": SECRET,
        "tasks": TASKS,
        "downloaded": env.downloaded,
        "paths": [str(p) for p in env.paths],
        "parameters": {task: {SDK_NAMES[k]: v for k, v in p.items()} for task, p in PARAMETERS.items()},
        "out": str(out),
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    done = subprocess.run(
        [str(sdk_python()), "-c", SCRIPT, json.dumps(plan)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=clean,
        cwd=str(out.parent),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(out.read_text()))


@pytest.mark.parametrize("mode", ["v1", "v0"])
@pytest.mark.parametrize("task", sorted(TASKS))
def test_sdk_infers_each_task_one_and_many_equal_get_model(
    env: World, results: dict[str, Any], mode: str, task: str
) -> None:
    model = get_model(TASKS[task])
    got = results[mode][task]
    assert results[mode]["mode"] == mode
    assert same(got["one"], model.infer(env.frames[0], **PARAMETERS[task]))
    assert isinstance(got["many"], list) and len(got["many"]) == len(env.frames)
    assert same(got["many"], model.infer(env.frames, **PARAMETERS[task]))
    if task == "object-detection":
        assert any(r["predictions"] for r in got["many"])


def test_sdk_model_routes(results: dict[str, Any]) -> None:
    v1 = results["v1"]
    assert v1["cleared_first"] == []
    loaded = [v1[task]["loaded"] for task in TASKS]
    for index, task in enumerate(TASKS):
        assert TASKS[task] in loaded[index]  # each load_model answer lists the model
    assert set(TASKS.values()) <= set(v1["listed"])
    description = v1["description"]
    assert description["model_id"] == TASKS["keypoint-detection"] and description["task_type"] == "keypoint-detection"
    assert (description["input_width"], description["input_height"]) == (640, 640)
    assert TASKS["classification"] not in v1["unloaded"] and TASKS["object-detection"] in v1["unloaded"]
    assert v1["cleared"] == []


def test_sdk_model_downloaded_on_first_use(env: World, results: dict[str, Any]) -> None:
    assert env.registry.count("ort", model_id=env.downloaded) == 1
    assert (env.cache / env.downloaded / "weights.onnx").is_file()
    expected = get_model(env.downloaded).infer(env.frames[0], **PARAMETERS["object-detection"])
    assert same(results["v1"]["downloaded"], expected) and expected["predictions"]
