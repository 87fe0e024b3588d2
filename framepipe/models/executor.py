"""The batching executor: every caller of a model (pipeline workers, ``infer`` from any thread, the
HTTP server) submits frames here, and frames that wait together run together.

* Callers ``submit`` frames (each with its parameters and an optional deadline) and get futures.
* A batch runs as soon as an inference slot is free: an idle model never waits for a batch to
  fill. While every slot is busy, frames queue, and the next free slot takes all that wait (up to
  the model's batch limit), from whichever callers they came: two pipelines on one model share
  batches.
* ``slots`` batches are in flight at once (two on a 2-core CPU, the worker plan found best): one
  is preprocessed or decoded while the other is in the session. Each slot keeps its input tensor
  for the largest batch it has seen, so batch sizes that change between calls reallocate nothing.
  A slot is given back as soon as the session has run: decoding is off the session's path.
* The threads that wait for results do the work: there are no executor threads to start, leak
  or stop. ``result()`` on a future (or ``infer``) runs queued batches while its own frames are
  not done.
* An error in a batch fails the futures of that batch only; a frame whose deadline passed before
  it ran fails with ``DeadlineExceededError``.

Example:
    >>> import numpy as np
    >>> from framepipe.models import get_model
    >>> executor = get_model("framepipe-shapes/1").executor
    >>> futures = executor.submit([np.zeros((240, 320, 3), np.uint8)] * 3)
    >>> [f.result().image_size for f in futures]
    [(320, 240), (320, 240), (320, 240)]
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from framepipe.errors import DeadlineExceededError
from framepipe.models.params import InferenceParameters
from framepipe.predictions import FramePrediction

if TYPE_CHECKING:
    from framepipe.models.base import Model

_WAIT = 0.05  # bounded waits: a waiter re-checks at least this often


class Slot:
    """One batch in flight: its reusable buffers (the model's preprocessing buffers, device
    bindings), kept from batch to batch, sized for ``capacity`` frames."""

    def __init__(self, index: int, capacity: int) -> None:
        self.index = index
        self.capacity = capacity
        self.state: dict[str, Any] = {}


class InferenceFuture(Future[FramePrediction]):
    """A future whose ``result()`` helps run queued batches until it is done."""

    def __init__(self, executor: BatchingExecutor) -> None:
        super().__init__()
        self._executor = executor

    def result(self, timeout: float | None = None) -> FramePrediction:
        self._executor.wait([self], timeout)
        return super().result(0)


@dataclass
class _Item:
    image: np.ndarray
    parameters: InferenceParameters
    future: InferenceFuture
    deadline: float | None
    queued_at: float = field(default_factory=time.monotonic)


@dataclass
class ExecutorStats:
    """What the executor has done: session ``runs``, ``frames`` run, a histogram of
    ``batch_sizes``, frames that ``expired`` or ``failed``, and the seconds frames waited."""

    runs: int = 0
    frames: int = 0
    expired: int = 0
    failed: int = 0
    batch_sizes: collections.Counter[int] = field(default_factory=collections.Counter)
    waited: float = 0.0


class BatchingExecutor:
    """Batches the frames of every caller of ``model`` (see the module docstring)."""

    def __init__(self, model: Model, slots: int = 2, max_batch_size: int | None = None) -> None:
        if slots < 1:
            raise ValueError(f"slots must be at least 1, got {slots}")
        self.model = model
        self.slots = slots
        self.max_batch_size = max(int(max_batch_size or model.max_batch_size), 1)
        self.stats = ExecutorStats()
        self._queue: collections.deque[_Item] = collections.deque()
        self._free: list[Slot] = [Slot(i, self.max_batch_size) for i in reversed(range(slots))]
        self._condition = threading.Condition()

    # -- callers ------------------------------------------------------------------------------------
    def submit(
        self,
        images: Sequence[np.ndarray],
        parameters: InferenceParameters | None = None,
        deadline: float | None = None,
    ) -> list[InferenceFuture]:
        """Queue ``images`` (BGR ``uint8``) and return one future per image, in order.
        ``deadline`` is a ``time.monotonic()`` time after which frames not yet run fail."""
        settings = parameters or self.model.parameters()
        items = []
        for image in images:
            if not isinstance(image, np.ndarray):
                raise TypeError(f"expected a numpy image, got {type(image).__name__}")
            items.append(_Item(image, settings, InferenceFuture(self), deadline))
        with self._condition:
            self._queue.extend(items)
            self._condition.notify_all()
        return [item.future for item in items]

    def infer(
        self,
        images: Sequence[np.ndarray],
        parameters: InferenceParameters | None = None,
        deadline: float | None = None,
        timeout: float | None = None,
    ) -> list[FramePrediction]:
        """``submit`` and wait: one prediction per image, in order (the first error raises). On
        ``TimeoutError`` the frames not yet running are cancelled, so they do not run for nobody."""
        futures = self.submit(images, parameters, deadline)
        try:
            self.wait(futures, timeout)
        except TimeoutError:
            for future in futures:
                future.cancel()
            raise
        return [f.result(0) for f in futures]

    def wait(self, futures: Sequence[Future[Any]], timeout: float | None = None) -> None:
        """Run queued batches on this thread until every future in ``futures`` is done;
        ``TimeoutError`` after ``timeout`` seconds."""
        limit = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while not all(f.done() for f in futures):
                if self._queue and self._free:
                    self._run_one()
                    continue
                left = _WAIT if limit is None else min(_WAIT, limit - time.monotonic())
                if left <= 0:
                    raise TimeoutError(f"no result from {self.model.model_id} within {timeout} s")
                self._condition.wait(left)

    @property
    def queue_depth(self) -> int:
        """Frames waiting for a slot."""
        with self._condition:
            return len(self._queue)

    @property
    def in_flight(self) -> int:
        """Batches being run now."""
        with self._condition:
            return self.slots - len(self._free)

    # -- running (called with the condition held; returns with it held) ------------------------------
    def _take(self) -> list[_Item]:
        now = time.monotonic()
        batch: list[_Item] = []
        while self._queue and len(batch) < self.max_batch_size:
            item = self._queue.popleft()
            if item.future.done():  # cancelled by its caller
                continue
            if item.deadline is not None and now > item.deadline:
                self.stats.expired += 1
                item.future.set_exception(
                    DeadlineExceededError(f"{self.model.model_id}: the frame waited past its deadline")
                )
                continue
            if not item.future.set_running_or_notify_cancel():
                continue
            self.stats.waited += now - item.queued_at
            batch.append(item)
        return batch

    def _run_one(self) -> None:
        batch = self._take()
        if not batch:
            self._condition.notify_all()
            return
        slot = self._free.pop()
        self._condition.release()
        try:
            self._run(batch, slot)
        finally:
            self._condition.acquire()
            self._condition.notify_all()

    def _give_back(self, slot: Slot) -> None:
        with self._condition:
            self._free.append(slot)
            self._condition.notify_all()

    def _run(self, batch: list[_Item], slot: Slot) -> None:
        model = self.model
        try:
            tensor, geometries = model.preprocess([item.image for item in batch], slot)
            outputs = model.run(tensor, slot)
        except BaseException as error:
            self._give_back(slot)
            self.stats.failed += len(batch)
            for item in batch:
                item.future.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        self._give_back(slot)  # the session is free: the next batch may start while this one is decoded
        self.stats.runs += 1
        self.stats.frames += len(batch)
        self.stats.batch_sizes[len(batch)] += 1
        groups: dict[InferenceParameters, list[int]] = {}
        for index, item in enumerate(batch):
            groups.setdefault(item.parameters, []).append(index)
        for parameters, indices in groups.items():
            if len(indices) == len(batch):
                chosen, chosen_geometries = list(outputs), geometries
            else:
                rows = np.asarray(indices)
                chosen = [o[rows] for o in outputs]
                chosen_geometries = [geometries[i] for i in indices]
            try:
                results = model.postprocess(chosen, chosen_geometries, parameters)
            except Exception as error:
                self.stats.failed += len(indices)
                for i in indices:
                    batch[i].future.set_exception(error)
                continue
            for i, result in zip(indices, results, strict=True):
                batch[i].future.set_result(result)

    def __repr__(self) -> str:
        return (
            f"BatchingExecutor({self.model.model_id!r}, slots={self.slots}, max_batch_size={self.max_batch_size}, "
            f"runs={self.stats.runs}, frames={self.stats.frames})"
        )
