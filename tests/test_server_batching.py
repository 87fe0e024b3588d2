"""Cross-request batching on the inference server: concurrent requests for one model run together in
its batching executor (fewer session runs than requests, counted by the executor), each caller getting
its own, correct answer; a list of images is cut into batches of the model's limit."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests

from framepipe.models import ModelManager
from framepipe.server import InferenceServer, ServerSettings
from framepipe.server.model_service import ModelService
from tests.test_server_support import body, comparable, slow_classifier

REQUESTS = 12


@pytest.fixture
def slow_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    slow_classifier(root / "fp-slow" / "1")
    monkeypatch.setenv("MODEL_CACHE_DIR", str(root))
    return root


def test_concurrent_requests_share_session_runs(slow_cache: Path) -> None:
    models = ModelService(ModelManager())
    with InferenceServer(port=0, settings=ServerSettings(), models=models) as server:
        model = models.add("fp-slow/1")
        executor = model.executor
        # every caller its own image size, so a mixed-up answer would show
        images = [np.full((100 + 10 * i, 200 + 7 * i, 3), 20 * i % 256, np.uint8) for i in range(REQUESTS)]
        runs_before, frames_before = executor.stats.runs, executor.stats.frames
        barrier = threading.Barrier(REQUESTS)

        def ask(index: int) -> dict:
            barrier.wait(10)
            answer = requests.post(
                f"{server.url}/infer/classification", json=body("fp-slow/1", images[index], confidence=0.1), timeout=60
            )
            assert answer.status_code == 200, answer.text
            return answer.json()

        with ThreadPoolExecutor(REQUESTS) as pool:
            answers = list(pool.map(ask, range(REQUESTS)))
        runs = executor.stats.runs - runs_before
        print(f"{REQUESTS} concurrent requests: {runs} session runs, batch sizes {dict(executor.stats.batch_sizes)}")
        assert executor.stats.frames - frames_before == REQUESTS
        assert runs < REQUESTS, f"{REQUESTS} concurrent requests took {runs} session runs"
        assert max(executor.stats.batch_sizes) > 1
        for image, answer in zip(images, answers, strict=True):
            assert answer["image"] == {"width": image.shape[1], "height": image.shape[0]}
            assert comparable(answer) == comparable(model.infer(image, confidence=0.1))


def test_a_long_list_is_cut_into_batches(slow_cache: Path) -> None:
    models = ModelService(ModelManager())
    with InferenceServer(port=0, settings=ServerSettings(), models=models) as server:
        model = models.add("fp-slow/1")
        model.executor.max_batch_size = 4
        runs_before = model.executor.stats.runs
        images = [np.full((64, 64 + i, 3), i, np.uint8) for i in range(10)]
        answer = requests.post(f"{server.url}/infer/classification", json=body("fp-slow/1", images), timeout=60)
        assert answer.status_code == 200
        assert [a["image"]["width"] for a in answer.json()] == [64 + i for i in range(10)]
        assert model.executor.stats.runs - runs_before >= 3  # 10 images, at most 4 per run
