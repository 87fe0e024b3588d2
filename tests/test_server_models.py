"""Roboflow's model-manager semantics on the inference server (real uvicorn, real ONNX models in a model
cache): MAX_ACTIVE_MODELS least-recently-used, PINNED_MODELS never evicted, PRELOAD_MODELS loaded at
start-up with /readiness 503 until then, concurrent first requests loading once, and eviction keeping
the cached files unless DISK_CACHE_CLEANUP is on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from framepipe.models import ModelManager
from framepipe.server import InferenceServer, ServerSettings
from framepipe.server.model_service import ModelService
from tests.helpers import wait_for
from tests.test_server_support import body, task_cache

FRAME = np.full((120, 160, 3), 90, np.uint8)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    task_cache(root)
    monkeypatch.setenv("MODEL_CACHE_DIR", str(root))
    return root


@contextmanager
def serving(settings: ServerSettings, service: ModelService | None = None) -> Iterator[tuple[str, ModelService]]:
    models = service or ModelService(
        ModelManager(max_models=settings.max_active_models), disk_cache_cleanup=settings.disk_cache_cleanup
    )
    with InferenceServer(port=0, settings=settings, models=models) as server:
        yield server.url, models


def loaded(url: str) -> list[str]:
    return [m["model_id"] for m in requests.get(f"{url}/model/registry", timeout=10).json()["models"]]


def add(url: str, model_id: str) -> None:
    assert requests.post(f"{url}/model/add", json={"model_id": model_id}, timeout=60).status_code == 200


def test_least_recently_used_model_is_evicted(cache: Path) -> None:
    with serving(ServerSettings(max_active_models=2)) as (url, _):
        add(url, "fp-cls/1")
        add(url, "fp-pose/1")
        assert requests.post(
            f"{url}/infer/classification", json=body("fp-cls/1", FRAME), timeout=60
        ).ok  # cls used last
        add(url, "fp-seg/1")
        assert loaded(url) == ["fp-cls/1", "fp-seg/1"]  # pose was the least recently used
        assert (cache / "fp-pose" / "1" / "weights.onnx").is_file()  # its files stay (DISK_CACHE_CLEANUP off)


def test_pinned_models_are_never_evicted(cache: Path) -> None:
    with serving(ServerSettings(max_active_models=1, pinned_models=("fp-seg/1",))) as (url, _):
        assert wait_for(lambda: requests.get(f"{url}/readiness", timeout=10).status_code == 200, 60)
        add(url, "fp-cls/1")
        add(url, "fp-pose/1")
        assert "fp-seg/1" in loaded(url) and "fp-cls/1" not in loaded(url)


class GatedModels(ModelService):
    """Loads real models, but only once the test opens the gate (to see /readiness before the load)."""

    gate = threading.Event()

    def _loader(self, model_id: str, api_key: str | None) -> Any:
        real = super()._loader(model_id, api_key)

        def load() -> Any:
            assert self.gate.wait(30)
            return real()

        return load


def test_preload_and_readiness(cache: Path) -> None:
    settings = ServerSettings(preload_models=("fp-cls/1",), pinned_models=("fp-pose/1",))
    service = GatedModels(ModelManager(max_models=4))
    with serving(settings, service) as (url, _):
        answer = requests.get(f"{url}/readiness", timeout=10)
        assert answer.status_code == 503 and answer.json() == {"status": "not ready"}
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
        service.gate.set()
        assert wait_for(lambda: requests.get(f"{url}/readiness", timeout=10).status_code == 200, 60)
        assert sorted(loaded(url)) == ["fp-cls/1", "fp-pose/1"]


def test_concurrent_first_requests_load_once(cache: Path) -> None:
    with serving(ServerSettings()) as (url, models):
        barrier = threading.Barrier(8)

        def ask(_: int) -> int:
            barrier.wait(10)
            return requests.post(f"{url}/infer/classification", json=body("fp-cls/1", FRAME), timeout=60).status_code

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(ask, range(8))) == [200] * 8
        assert models.manager.loads == 1


def test_disk_cache_cleanup_deletes_evicted_files(cache: Path) -> None:
    with serving(ServerSettings(max_active_models=1, disk_cache_cleanup=True)) as (url, _):
        add(url, "fp-cls/1")
        add(url, "fp-pose/1")
        assert loaded(url) == ["fp-pose/1"]
        assert not (cache / "fp-cls" / "1").exists()
        assert requests.post(f"{url}/model/remove", json={"model_id": "fp-pose/1"}, timeout=10).ok
        assert not (cache / "fp-pose" / "1").exists()
        add(url, "framepipe-shapes/1")  # bundled: never deleted
        add(url, "fp-seg/1")
        assert (cache / "fp-seg" / "1" / "weights.onnx").is_file()
