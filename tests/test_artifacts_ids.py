"""Model ids, aliases, the version-0 stub, settings from the environment, secret redaction and the
parsing of registry answers: the parts of the artifact cache that need no server."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from framepipe.artifacts import aliases as alias_module
from framepipe.artifacts import register_alias, resolve_alias, resolve_model
from framepipe.artifacts.cache import parse_size
from framepipe.artifacts.model_id import parse_model_id, safe_file_name
from framepipe.artifacts.redact import install_log_redaction, redact_text, redact_url, strip_secrets
from framepipe.artifacts.roboflow_api import RemoteFile, ort_url, parse_ort
from framepipe.artifacts.settings import RegistrySettings
from framepipe.artifacts.transport import error_for_status
from framepipe.errors import (
    InvalidModelIdError,
    MalformedRegistryResponseError,
    ModelOfflineError,
    RegistryForbiddenError,
    RegistryModelNotFoundError,
    RegistryUnsuccessfulRequestError,
    UnsafePathError,
)
from framepipe.models import StubModel
from tests.artifacts_support import SECRET, SOURCE


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in ("ROBOFLOW_API_KEY", "API_KEY", "API_BASE_URL", "FRAMEPIPE_OFFLINE", "OFFLINE_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(alias_module.ALIASES_ENV, raising=False)
    monkeypatch.setattr(alias_module, "_user_aliases", {})
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "cache"))


def test_model_ids_parse_and_paths_that_escape_are_refused() -> None:
    assert parse_model_id("coco-dataset-vdnr1/2").model_id == "coco-dataset-vdnr1/2"
    for bad in ("../x/1", "x/..", "/etc/passwd", "a\\..\\b/1", "x/", "/x", "x/./1", "./1"):
        with pytest.raises(UnsafePathError, match="refused model id"):
            parse_model_id(bad)
    for bad in ("no-slash", "a/b/c", "_file_locks/1", "x/.hidden", "sp ace/1"):
        with pytest.raises(InvalidModelIdError, match="dataset_id/version_id"):
            parse_model_id(bad)


def test_server_file_names_must_be_plain_names() -> None:
    assert safe_file_name("yolov5s_weights.onnx") == "yolov5s_weights.onnx"
    for bad in ("..", "../w.onnx", "/etc/passwd", "a/b", "a\\b", ".hidden", "", "x\x00y", "w.onnx.", 7, None):
        with pytest.raises(UnsafePathError, match="refused file name"):
            safe_file_name(bad)


def test_roboflow_aliases_and_user_aliases(tmp_path, monkeypatch) -> None:
    assert resolve_alias("yolov8n-640") == "coco/3"
    assert resolve_alias("yolo11n-640") == resolve_alias("yolov11n-640") == "coco/25"
    assert resolve_alias("rfdetr-base") == "coco/36"
    assert resolve_alias("my-dataset/4") == "my-dataset/4"
    register_alias("doorbell", "doorbell-cam/7")
    register_alias("yolov8n-640", "my-coco/1")  # a user entry wins over the built-in one
    assert resolve_alias("doorbell") == "doorbell-cam/7" and resolve_alias("yolov8n-640") == "my-coco/1"
    with pytest.raises(InvalidModelIdError, match="single name"):
        register_alias("a/b", "c/1")
    table = tmp_path / "aliases.json"
    table.write_text(json.dumps({"shapes": str(SOURCE), "porch": "porch-cam/2"}))
    monkeypatch.setenv(alias_module.ALIASES_ENV, str(table))
    assert resolve_alias("porch") == "porch-cam/2"
    # an alias may name a model folder: it loads like that folder
    assert resolve_model("shapes").class_names == ["circle", "square", "triangle", "star"]
    table.write_text("[1, 2]")
    with pytest.raises(InvalidModelIdError, match="FRAMEPIPE_MODEL_ALIASES"):
        resolve_alias("porch")


def test_alias_resolves_to_its_cache_folder_offline(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FRAMEPIPE_OFFLINE", "1")
    with pytest.raises(ModelOfflineError) as error:
        resolve_model("yolov8n-640")
    assert str(tmp_path / "cache" / "coco" / "3") in str(error.value)


def test_version_zero_is_a_stub_that_answers_empty_predictions() -> None:
    artifacts = resolve_model("any-dataset/0")  # no files, no network, no key
    assert artifacts.is_stub and artifacts.model_type == {
        "project_task_type": "object-detection",
        "model_type": "stub",
        "model_id": "any-dataset/0",
    }
    model = StubModel(artifacts)
    frame = np.zeros((360, 640, 3), np.uint8)
    assert model.infer(frame, confidence=0.9) == {"image": {"width": 640, "height": 360}, "predictions": []}
    small = np.zeros((10, 20, 3), np.uint8)
    assert model.infer([frame, small]) == [
        {"image": {"width": 640, "height": 360}, "predictions": []},
        {"image": {"width": 20, "height": 10}, "predictions": []},
    ]
    tensor, sizes = model.preprocess([small])  # the stages a pipeline calls
    assert [p.to_roboflow() for p in model.postprocess(model.run(tensor), sizes, model.parameters())] == [
        {"image": {"width": 20, "height": 10}, "predictions": []}
    ]
    with pytest.raises(ValueError, match="BGR image"):
        model.infer(np.zeros((10, 20), np.uint8)[None])


def test_settings_follow_roboflow_environment_variables() -> None:
    settings = RegistrySettings.from_env(
        {
            "API_KEY": "second",
            "ROBOFLOW_API_KEY": SECRET,
            "API_BASE_URL": "http://models.lan:9001/",
            "DEVICE_ID": "gate-camera",
            "OFFLINE_MODE": "True",
            "FRAMEPIPE_LOCK_TIMEOUT": "300",
            "FRAMEPIPE_DOWNLOAD_RETRIES": "5",
        }
    )
    assert settings.api_key == SECRET and settings.api_base_url == "http://models.lan:9001"
    assert settings.device_id == "gate-camera" and settings.offline and not settings.api_base_url_is_default
    assert settings.lock_timeout_s == 300 and settings.retries == 5
    assert SECRET not in repr(settings)
    fallback = RegistrySettings.from_env({"API_KEY": "second", "FRAMEPIPE_OFFLINE": "0"})
    assert fallback.api_key == "second" and not fallback.offline and fallback.api_base_url_is_default
    assert fallback.lock_timeout_s == 120 and fallback.api_base_url == "https://api.roboflow.com"
    with pytest.raises(ValueError, match="FRAMEPIPE_LOCK_TIMEOUT='soon' is not a number"):
        RegistrySettings.from_env({"FRAMEPIPE_LOCK_TIMEOUT": "soon"})


def test_ort_request_url_is_roboflows() -> None:
    ref = parse_model_id("my-ds/3")
    settings = RegistrySettings(api_base_url="https://api.roboflow.com", api_key="a b&c", device_id="host 1")
    assert (
        ort_url(settings, ref)
        == "https://api.roboflow.com/ort/my-ds/3?nocache=true&device=host+1&dynamic=true&api_key=a+b%26c"
    )
    for key in (None, "local"):
        url = ort_url(RegistrySettings(api_key=key, device_id="h"), ref)
        assert url == "https://api.roboflow.com/ort/my-ds/3?nocache=true&device=h&dynamic=true"


def test_secrets_are_redacted_from_urls_text_and_http_logs(caplog) -> None:
    url = f"https://storage.example/w.onnx?X-Goog-Signature=abc&X-Goog-Credential=c&v=1&api_key={SECRET}"
    assert SECRET not in redact_url(url) and "abc" not in redact_url(url) and "v=1" in redact_url(url)
    assert strip_secrets(url) == "https://storage.example/w.onnx?v=1"
    assert redact_text(f"GET /ort/a/1?api_key={SECRET}&x=1 failed") == "GET /ort/a/1?api_key=***&x=1 failed"
    assert redact_text(f"key is {SECRET}!", (SECRET,)) == "key is ***!"
    install_log_redaction()
    caplog.set_level(logging.DEBUG)
    logging.getLogger("urllib3.connectionpool").debug('"GET /ort/a/1?api_key=%s HTTP/1.1" 200', SECRET)
    assert caplog.records and SECRET not in caplog.text and "api_key=***" in caplog.text
    assert "abc" not in repr(RemoteFile("weights.onnx", url))


def test_sizes_parse_with_binary_and_decimal_units() -> None:
    assert parse_size("500M") == 500 * 2**20 and parse_size("2g") == 2 * 2**30 and parse_size("1.5GiB") == 3 * 2**29
    assert parse_size("800MB") == 800_000_000 and parse_size("123") == 123 and parse_size("10b") == 10
    for bad in ("", "lots", "5X", "-1G"):
        with pytest.raises(ValueError, match="size"):
            parse_size(bad)


def test_status_errors_name_the_model_and_what_to_check() -> None:
    forbidden = error_for_status(403, "model 'ds/3'", "https://api.roboflow.com")
    assert isinstance(forbidden, RegistryForbiddenError) and "workspace" in str(forbidden) and "ds/3" in str(forbidden)
    assert isinstance(error_for_status(404, "x", "y"), RegistryModelNotFoundError)
    other = error_for_status(418, "model 'ds/3'", "https://api.roboflow.com")
    assert type(other) is RegistryUnsuccessfulRequestError and other.status == 418


def test_registry_answers_in_roboflows_shape_are_parsed() -> None:
    ref = parse_model_id("barbel-detection/2")
    answer = {
        "ort": {
            "name": "barbel-detection",
            "type": "object-detection",
            "icon": "",
            "annotation": "person-barbell-edge",
            "environment": "https://storage.example/env.json?X-Goog-Signature=s",
            "classes": ["barbell-edge", "person", "plate"],
            "colors": {"person": "#C7FC00"},
            "model": "https://storage.example/weights.onnx?X-Goog-Signature=s",
        }
    }
    model = parse_ort(answer, ref, "https://api.roboflow.com")
    # no modelType: Roboflow's default for detection is yolov5v2s, whose weights file is yolov5s_weights.onnx
    assert (model.task_type, model.model_type, model.weights.name) == (
        "object-detection",
        "yolov5v2s",
        "yolov5s_weights.onnx",
    )
    assert model.weights.sha256 is None and model.classes == ["barbell-edge", "person", "plate"]
    answer["ort"]["modelType"] = "yolov8s"
    assert parse_ort(answer, ref, "here").weights.name == "weights.onnx"
    for broken in (
        {},
        {"ort": {**answer["ort"], "model": None}},
        {"ort": {**answer["ort"], "classes": "person"}},
        {"ort": {**answer["ort"], "classes": ["a\nb"]}},
        {"ort": {**answer["ort"], "sha256": {"weights.onnx": "xyz"}}},
    ):
        with pytest.raises(MalformedRegistryResponseError, match="here"):
            parse_ort(broken, ref, "here")
