"""The inference server's view of the process's model manager: Roboflow's ``/model/*`` semantics on the
manager that ``get_model`` and pipelines use, so that a request and a pipeline on one model share its
session and its batches.

* ``MAX_ACTIVE_MODELS`` idle models stay loaded, the least recently used evicted first; a model in use
  (a request under way, a pipeline, a pinned model) is never evicted.
* ``PINNED_MODELS`` are loaded at start-up and held until the server stops (or ``/model/remove``);
  ``PRELOAD_MODELS`` are loaded at start-up; ``ready`` is true once both are loaded.
* Concurrent first requests for a model load it once (the manager's per-model gate).
* Eviction frees the session; the files stay in the cache unless ``disk_cache_cleanup`` is on
  (Roboflow deletes them by default). ``/model/remove`` and ``/model/clear`` delete them likewise
  only when it is on.
* Only ``dataset_id/version_id`` ids (or aliases of them) are served: a request never names a path.

Example:
    >>> from framepipe.models import ModelManager
    >>> from framepipe.server.model_service import ModelService
    >>> service = ModelService(ModelManager(max_models=2))
    >>> with service.use("framepipe-shapes/1") as model:
    ...     model.task_type
    'object-detection'
    >>> [d["model_id"] for d in service.describe()["models"]]
    ['framepipe-shapes/1']
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from framepipe.artifacts import ModelCache, parse_model_id, resolve_alias
from framepipe.artifacts.resolve import bundled_model_ids
from framepipe.errors import FramepipeError, ModelNotFoundError
from framepipe.models import DEFAULT_MANAGER, Model, ModelLease, ModelManager, load_model

logger = logging.getLogger("framepipe.server")

TASK_ROUTES = {
    "object-detection": "/infer/object_detection",
    "instance-segmentation": "/infer/instance_segmentation",
    "classification": "/infer/classification",
    "keypoint-detection": "/infer/keypoints_detection",
}
"""The ``/infer`` route of each task (Roboflow's ``request_paths``)."""


def canonical_id(model_id: str) -> str:
    """``model_id`` with its alias resolved, checked to be ``dataset_id/version_id``
    (``InvalidModelIdError`` otherwise: a request never names a path on the server)."""
    target = resolve_alias(model_id.strip()) if isinstance(model_id, str) else model_id
    return parse_model_id(target).model_id


class ModelService:
    """Loads, lists and unloads models for the server on ``manager`` (default: ``get_model``'s)."""

    def __init__(
        self,
        manager: ModelManager[Model] | None = None,
        *,
        max_active_models: int | None = None,
        disk_cache_cleanup: bool = False,
        forward_api_keys: bool = True,
    ) -> None:
        self.manager = manager if manager is not None else DEFAULT_MANAGER
        if max_active_models is not None:
            self.manager.max_models = max(int(max_active_models), 1)
        self.disk_cache_cleanup = disk_cache_cleanup
        self.forward_api_keys = forward_api_keys
        self._pins: dict[str, ModelLease[Model]] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._ready.set()
        self.startup_errors: dict[str, str] = {}

    # -- keys -------------------------------------------------------------------------------------
    @staticmethod
    def key(model_id: str) -> tuple[str, None]:
        """The manager key ``get_model(model_id)`` uses (no pinned providers)."""
        return (model_id, None)

    @staticmethod
    def model_id_of(key: Hashable) -> str | None:
        if isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str) and key[1] is None:
            return key[0]
        return key if isinstance(key, str) else None

    def _loader(self, model_id: str, api_key: str | None) -> Any:
        key = api_key if self.forward_api_keys else None
        return lambda: load_model(model_id, key)

    # -- use --------------------------------------------------------------------------------------
    def acquire(self, model_id: str, api_key: str | None = None) -> ModelLease[Model]:
        """Load (the first time) and hold ``model_id`` (after ``canonical_id``) until the lease is released."""
        model_id = canonical_id(model_id)
        return self.manager.acquire(model_id, self._loader(model_id, api_key), key=self.key(model_id))

    @contextlib.contextmanager
    def use(self, model_id: str, api_key: str | None = None) -> Iterator[Model]:
        """``acquire`` as a ``with`` block."""
        lease = self.acquire(model_id, api_key)
        try:
            yield lease.model
        finally:
            lease.release()

    def add(self, model_id: str, api_key: str | None = None) -> Model:
        """Load ``model_id`` (``/model/add``) and mark it most recently used."""
        with self.use(model_id, api_key) as model:
            return model

    def pin(self, model_id: str, api_key: str | None = None) -> None:
        """Load ``model_id`` and hold it until ``unpin`` or ``close``."""
        lease = self.acquire(model_id, api_key)
        with self._lock:
            old = self._pins.pop(canonical_id(model_id), None)
            self._pins[canonical_id(model_id)] = lease
        if old is not None:
            old.release()

    def unpin(self, model_id: str) -> None:
        with self._lock:
            lease = self._pins.pop(model_id, None)
        if lease is not None:
            lease.release()

    # -- removal ----------------------------------------------------------------------------------
    def remove(self, model_id: str) -> None:
        """Unload ``model_id`` (``/model/remove``): unpinned, dropped unless a pipeline or a request holds
        it, its files deleted when ``disk_cache_cleanup``. An unknown id is ``ModelNotFoundError``."""
        model_id = canonical_id(model_id)
        self.unpin(model_id)
        key = self.key(model_id)
        if key not in self.manager:
            raise ModelNotFoundError(f"model {model_id!r} is not loaded")
        if self.manager.remove(key):
            self.cleanup_files(key)

    def clear(self) -> None:
        """Unload every model no pipeline or request holds (``/model/clear``), pins included."""
        with self._lock:
            pins, self._pins = list(self._pins.values()), {}
        for lease in pins:
            lease.release()
        for key, _ in self.manager.items():
            if self.model_id_of(key) is not None and self.manager.remove(key):
                self.cleanup_files(key)

    def cleanup_files(self, key: Hashable) -> None:
        """Delete an unloaded model's cache folder when ``disk_cache_cleanup`` is on (never a bundled model,
        a stub or a model another lease still holds)."""
        model_id = self.model_id_of(key)
        if not self.disk_cache_cleanup or model_id is None or key in self.manager:
            return
        try:
            ref = parse_model_id(model_id)
        except FramepipeError:
            return
        if ref.version_id == "0" or ref.model_id in bundled_model_ids():
            return
        try:
            ModelCache().remove(ref, timeout_s=5.0)
            logger.info("DISK_CACHE_CLEANUP: deleted the cached files of %s", ref.model_id)
        except ModelNotFoundError:
            pass
        except FramepipeError as error:
            logger.warning("DISK_CACHE_CLEANUP: could not delete the files of %s: %s", ref.model_id, error)

    # -- start-up ---------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """Whether the start-up models (pinned and preloaded) have been loaded (or failed to)."""
        return self._ready.is_set()

    def start(self, pinned: tuple[str, ...], preload: tuple[str, ...], timeout_s: float = 300.0) -> threading.Thread:
        """Load ``pinned`` (held) and ``preload`` (loaded) on two threads, in the background; ``ready``
        turns true when they are done. A model that fails is logged and named in ``startup_errors``."""
        self._ready.clear()
        self.manager.add_eviction_listener(self.cleanup_files)

        def load_all() -> None:
            jobs = [(name, True) for name in pinned] + [(name, False) for name in preload if name not in pinned]
            with ThreadPoolExecutor(2, thread_name_prefix="framepipe-preload") as pool:
                futures = {pool.submit(self.pin if pin else self.add, name): name for name, pin in jobs}
                done, late = wait(futures, timeout=timeout_s)
                for future in done:
                    error = future.exception()
                    if error is not None:
                        self.startup_errors[futures[future]] = str(error)
                        logger.error("could not load start-up model %s: %s", futures[future], error)
                for future in late:
                    self.startup_errors[futures[future]] = f"not loaded within {timeout_s:g} s"
            self._ready.set()

        thread = threading.Thread(target=load_all, name="framepipe-server-preload", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        """Release the pins and stop listening to evictions (the models stay for other users)."""
        self.manager.remove_eviction_listener(self.cleanup_files)
        with self._lock:
            pins, self._pins = list(self._pins.values()), {}
        for lease in pins:
            lease.release()

    # -- listing ----------------------------------------------------------------------------------
    def loaded(self) -> list[tuple[str, Model]]:
        """The loaded models served by id, least recently used first."""
        found = []
        for key, model in self.manager.items():
            model_id = self.model_id_of(key)
            if model_id is not None:
                found.append((model_id, model))
        return found

    def describe(self) -> dict[str, Any]:
        """Roboflow's ``ModelsDescriptions`` JSON of the loaded models."""
        return {
            "models": [describe_model(model_id, model) for model_id, model in self.loaded()],
            "total_vram_bytes": None,
            "gpu_memory_used": None,
            "gpu_memory_total": None,
            "torch_cuda_allocated": None,
            "torch_cuda_reserved": None,
            "torch_cuda_allocator_cache": None,
            "non_torch_gpu_memory": None,
        }


def describe_model(model_id: str, model: Model) -> dict[str, Any]:
    """One ``ModelDescription`` (a dynamic batch is ``null``, as Roboflow sends it)."""
    width, height = model.input_size
    return {
        "model_id": model_id,
        "task_type": model.task_type,
        "batch_size": model.batch_size,
        "input_height": height or None,
        "input_width": width or None,
        "vram_bytes": None,
        "request_aliases": [],
        "request_paths": [TASK_ROUTES[model.task_type]] if model.task_type in TASK_ROUTES else [],
    }
