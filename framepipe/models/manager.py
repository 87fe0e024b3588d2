"""A process-wide cache of loaded models, so that pipelines on the same model share one session.

At most ``max_models`` stay loaded (``MAX_ACTIVE_MODELS``, 8 by default, as Roboflow); the least
recently used one is dropped first. Sessions are safe to share between threads.

Example:
    >>> from framepipe.models.manager import ModelManager
    >>> manager = ModelManager(max_models=2)
    >>> manager.get("framepipe-shapes/1") is manager.get("framepipe-shapes/1")
    True
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from framepipe.models.detector import ObjectDetectionModel

Loader = Callable[[], ObjectDetectionModel]


class ModelManager:
    """Loads each model once; concurrent requests for the same model wait for one load."""

    def __init__(self, max_models: int | None = None) -> None:
        self.max_models = max(int(max_models or os.environ.get("MAX_ACTIVE_MODELS", "8")), 1)
        self._models: OrderedDict[Hashable, ObjectDetectionModel] = OrderedDict()
        self._loading: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, model_id: str, loader: Loader | None = None, key: Hashable | None = None) -> ObjectDetectionModel:
        """The loaded model for ``key`` (default ``model_id``), loading it with ``loader`` (default
        ``load_model(model_id)``) the first time."""
        key = key if key is not None else model_id
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                return model
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:  # one load per key; others wait for it
            with self._lock:
                model = self._models.get(key)
                if model is not None:
                    self._models.move_to_end(key)
                    return model
            if loader is None:
                from framepipe.models.loader import load_model

                model = load_model(model_id)
            else:
                model = loader()
            with self._lock:
                self._models[key] = model
                self._models.move_to_end(key)
                while len(self._models) > self.max_models:
                    self._models.popitem(last=False)
                self._loading.pop(key, None)
            return model

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._models

    def __len__(self) -> int:
        with self._lock:
            return len(self._models)

    def clear(self) -> None:
        """Forget every loaded model (sessions are freed when no one else holds them)."""
        with self._lock:
            self._models.clear()


DEFAULT_MANAGER = ModelManager()
"""The manager ``get_model`` uses."""
