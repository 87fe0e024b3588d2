"""Helpers of the client tests against the real server (no tests here): a model cache holding a model
of each task, a model registry on 127.0.0.1 from which the server downloads a detector on first use,
``framepipe serve``'s app on uvicorn on 127.0.0.1, and frames of a real H.264 clip written as PNG
files (lossless, so the server decodes exactly the frame that ``get_model(...).infer`` gets)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from framepipe.server import InferenceServer, RegistryServer, ServerSettings
from tests.artifacts_support import SECRET, make_registry, start_server
from tests.test_server_support import clip_frames, comparable, task_cache

DETECTOR = "framepipe-shapes/1"  # bundled: no download
DOWNLOADED = "reg-det/3"  # in the registry only: the server downloads it on first use
# (each test module names its own: the process's model manager, shared with the server, keeps models)
TASKS = {
    "object-detection": DETECTOR,
    "instance-segmentation": "fp-seg/1",
    "keypoint-detection": "fp-pose/1",
    "classification": "fp-cls/1",
}
PARAMETERS: dict[str, dict[str, Any]] = {
    # framepipe names -> (inference_sdk InferenceConfiguration field, value)
    "object-detection": {"confidence": 0.3, "iou_threshold": 0.5},
    "instance-segmentation": {"confidence": 0.4},
    "keypoint-detection": {"confidence": 0.4, "keypoint_confidence": 0.5},
    "classification": {"confidence": 0.15},
}


@dataclass
class World:
    server: InferenceServer
    registry: RegistryServer
    cache: Path
    frames: list[np.ndarray]
    paths: list[Path]
    downloaded: str


def _setenv(values: dict[str, str]) -> dict[str, str | None]:
    old = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    return old


def _restore(old: dict[str, str | None]) -> None:
    for name, value in old.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextmanager
def world(
    folder: Path, video: str | Path, count: int = 3, api_keys: tuple[str, ...] = (), downloaded: str = DOWNLOADED
) -> Iterator[World]:
    """The cache, the registry (key ``SECRET``) holding ``downloaded``, the inference server, ``count``
    frames and their PNGs."""
    cache, registry_root = folder / "cache", folder / "registry"
    task_cache(cache)
    make_registry(registry_root, downloaded)
    registry = start_server(registry_root)
    old = _setenv({"MODEL_CACHE_DIR": str(cache), "API_BASE_URL": registry.url, "FRAMEPIPE_RETRY_BACKOFF": "0.05"})
    frames = clip_frames(video, count)
    paths = []
    for index, image in enumerate(frames):
        paths.append(folder / f"frame{index}.png")
        cv2.imwrite(str(paths[-1]), image)
    from framepipe.models.loader import DEFAULT_MANAGER

    # the models of this world's cache, not those an earlier test loaded under the same ids
    DEFAULT_MANAGER.clear()
    server = InferenceServer(port=0, settings=ServerSettings(api_keys=api_keys)).start()
    try:
        yield World(server, registry, cache, frames, paths, downloaded)
    finally:
        server.stop()
        registry.stop()
        _restore(old)
        DEFAULT_MANAGER.clear()


def same(answer: Any, expected: Any) -> bool:
    """Whether a server answer (or a list of them) equals ``infer``'s, ids and timing aside."""
    if isinstance(expected, list):
        return isinstance(answer, list) and [comparable(a) for a in answer] == [comparable(e) for e in expected]
    return comparable(answer) == comparable(expected)


__all__ = ["DETECTOR", "DOWNLOADED", "PARAMETERS", "SECRET", "TASKS", "World", "same", "world"]
