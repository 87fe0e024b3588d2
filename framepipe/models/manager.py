"""A process-wide table of loaded models, so that every caller of a model shares one session and
one batching executor.

* ``get`` loads a model once; concurrent first calls for it wait for that one load.
* At most ``max_models`` idle models stay loaded (``MAX_ACTIVE_MODELS``, 8 by default, as Roboflow);
  the least recently used idle one goes first. A model held with ``acquire`` (a pipeline, a
  request) is never evicted, and an evicted model that someone still holds is found again by the
  next ``get`` instead of being loaded a second time.
* The manager works on any ``Model`` and gets its loader passed in (``framepipe.models.loader``
  gives the one ``get_model`` uses).
* ``on_evict`` listeners (``add_eviction_listener``) hear of every model evicted to make room,
  after the manager's lock is released (the inference server deletes its files there when
  ``DISK_CACHE_CLEANUP`` is on).

Example:
    >>> from framepipe.models import load_model
    >>> from framepipe.models.manager import ModelManager
    >>> manager = ModelManager(lambda model_id: load_model(model_id), max_models=2)
    >>> with manager.acquire("framepipe-shapes/1") as model:
    ...     model is manager.get("framepipe-shapes/1")
    True
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from types import TracebackType
from typing import Generic, TypeVar

M = TypeVar("M")
Loader = Callable[[str], M]


class ModelLease(Generic[M]):
    """A hold on a loaded model: it stays loaded until ``release()`` (or the end of a ``with``)."""

    def __init__(self, manager: ModelManager[M], key: Hashable, model: M) -> None:
        self.model = model
        self._manager = manager
        self._key = key
        self._released = False
        self._lock = threading.Lock()

    def release(self) -> None:
        """Give the hold back (once; later calls do nothing)."""
        with self._lock:
            if self._released:
                return
            self._released = True
        self._manager._release(self._key)

    def __enter__(self) -> M:
        return self.model

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()


class ModelManager(Generic[M]):
    """Loads each model once, keeps the ``max_models`` most recently used idle ones, and never
    drops one that is held."""

    def __init__(self, loader: Loader[M] | None = None, max_models: int | None = None) -> None:
        self.max_models = max(int(max_models or os.environ.get("MAX_ACTIVE_MODELS", "8")), 1)
        self._loader = loader
        self._models: OrderedDict[Hashable, M] = OrderedDict()
        self._holds: dict[Hashable, int] = {}
        self._evicted: weakref.WeakValueDictionary[Hashable, M] = weakref.WeakValueDictionary()
        self._loading: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Hashable], None]] = []
        self._pending: list[Hashable] = []
        self.loads = 0

    def add_eviction_listener(self, listener: Callable[[Hashable], None]) -> None:
        """Call ``listener(key)`` for each model evicted to make room (not for ``remove``/``clear``)."""
        with self._lock:
            self._listeners.append(listener)

    def remove_eviction_listener(self, listener: Callable[[Hashable], None]) -> None:
        """Stop calling ``listener`` (nothing happens when it was not added)."""
        with self._lock, contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def _notify(self) -> None:
        with self._lock:
            keys, self._pending = self._pending, []
            listeners = list(self._listeners)
        for key in keys:
            for listener in listeners:
                listener(key)

    def _cached(self, key: Hashable) -> M | None:
        model = self._models.get(key)
        if model is None:
            model = self._evicted.pop(key, None) if key in self._evicted else None
            if model is not None:  # evicted while someone still used it: take it back, load nothing
                self._models[key] = model
                self._models.move_to_end(key)
                self._evict()
                return model
        if model is not None:
            self._models.move_to_end(key)
        return model

    def get(self, model_id: str, loader: Callable[[], M] | None = None, key: Hashable | None = None) -> M:
        """The loaded model for ``key`` (default ``model_id``), loaded with ``loader()`` (default:
        the manager's loader on ``model_id``) the first time."""
        key = key if key is not None else model_id
        with self._lock:
            model = self._cached(key)
            gate = self._loading.setdefault(key, threading.Lock()) if model is None else None
        if gate is None:
            self._notify()
            return model  # type: ignore[return-value]
        with gate:  # one load per key; others wait for it
            with self._lock:
                model = self._cached(key)
            if model is not None:
                self._notify()
                return model
            if loader is not None:
                model = loader()
            elif self._loader is not None:
                model = self._loader(model_id)
            else:
                raise ValueError("this ModelManager has no loader: pass loader=")
            with self._lock:
                self.loads += 1
                self._models[key] = model
                self._models.move_to_end(key)
                self._evict()
                self._loading.pop(key, None)
            self._notify()
            return model

    def acquire(
        self, model_id: str, loader: Callable[[], M] | None = None, key: Hashable | None = None
    ) -> ModelLease[M]:
        """``get`` and hold: the model is not evicted until the lease is released."""
        key = key if key is not None else model_id
        while True:
            model = self.get(model_id, loader, key)
            with self._lock:
                if self._models.get(key) is model:  # still loaded (not evicted between get and here)
                    self._holds[key] = self._holds.get(key, 0) + 1
                    return ModelLease(self, key, model)

    def _release(self, key: Hashable) -> None:
        with self._lock:
            count = self._holds.get(key, 0) - 1
            if count > 0:
                self._holds[key] = count
            else:
                self._holds.pop(key, None)
            self._evict()
        self._notify()

    def _evict(self) -> None:
        newest = next(reversed(self._models), None)  # the model just used stays, even over the limit
        idle = [k for k in self._models if not self._holds.get(k) and k != newest]
        while len(self._models) > self.max_models and idle:
            key = idle.pop(0)  # least recently used first
            model = self._models.pop(key)
            if self._listeners:
                self._pending.append(key)
            with contextlib.suppress(TypeError):  # not weakly referenceable: nothing can find it again
                self._evicted[key] = model

    def held(self, key: Hashable) -> int:
        """How many leases hold ``key``."""
        with self._lock:
            return self._holds.get(key, 0)

    def keys(self) -> list[Hashable]:
        """The keys of the loaded models, least recently used first."""
        with self._lock:
            return list(self._models)

    def items(self) -> list[tuple[Hashable, M]]:
        """The loaded models and their keys, least recently used first (using none of them)."""
        with self._lock:
            return list(self._models.items())

    def remove(self, key: Hashable) -> bool:
        """Unload ``key`` unless it is held; whether it was unloaded."""
        with self._lock:
            if self._holds.get(key) or key not in self._models:
                return False
            del self._models[key]
            return True

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._models

    def __len__(self) -> int:
        with self._lock:
            return len(self._models)

    def clear(self) -> None:
        """Unload every model that is not held (held ones stay)."""
        with self._lock:
            for key in [k for k in self._models if not self._holds.get(k)]:
                del self._models[key]
