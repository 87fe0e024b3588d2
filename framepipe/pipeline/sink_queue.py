"""The bounded queue in front of a sink, bounded by count and by bytes, with a policy per source.

``block``: the producer waits for room (nothing is lost: files). ``drop_oldest``: the oldest
waiting result makes room and is counted as dropped (live sources: a slow sink then sees the
freshest results and never slows inference down). The policy is per source: an item is dropped
only when every frame in it comes from a ``drop_oldest`` source, so a file's results are never
dropped because a camera shares the pipeline. The queue is full at ``maxsize`` items or at
``max_bytes`` of queued frames (one item always fits).

Example:
    >>> from framepipe.pipeline.sink_queue import SinkQueue
    >>> queue = SinkQueue(maxsize=2, policy="drop_oldest")
    >>> for item in ("a", "b", "c"):
    ...     _ = queue.put(item, source_ids=[0])
    >>> queue.get(), queue.dropped
    ('b', {0: 1})
    >>> mixed = SinkQueue(maxsize=1, policies={0: "block", 1: "drop_oldest"})
    >>> mixed.put("file result", source_ids=[0]), mixed.put("camera result", source_ids=[1], timeout=0)
    (True, False)
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["POLICIES", "SinkQueue"]

POLICIES = ("block", "drop_oldest")


class SinkQueue:
    """A bounded FIFO between two threads of the pipeline.

    ``policy`` applies to every source; ``policies`` (source id → policy) overrides it per source.
    """

    def __init__(
        self,
        maxsize: int,
        policy: str = "block",
        max_bytes: int | None = None,
        policies: Mapping[int, str] | None = None,
    ) -> None:
        for value in (policy, *(policies or {}).values()):
            if value not in POLICIES:
                raise ValueError(f"sink queue policy must be one of {POLICIES}, got {value!r}")
        self.maxsize = max(int(maxsize), 1)
        self.max_bytes = max_bytes
        self.policy = policy
        self.policies = dict(policies or {})
        self._items: collections.deque[tuple[Any, tuple[int, ...], int]] = collections.deque()
        self._bytes = 0
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False
        self.dropped: dict[int, int] = {}
        self.peak_bytes = 0

    def _droppable(self, source_ids: tuple[int, ...]) -> bool:
        return bool(source_ids) and all(self.policies.get(s, self.policy) == "drop_oldest" for s in source_ids)

    def _full(self, nbytes: int) -> bool:
        if len(self._items) >= self.maxsize:
            return True
        return self.max_bytes is not None and bool(self._items) and self._bytes + nbytes > self.max_bytes

    def _drop_one(self) -> bool:
        for index, (_, ids, nbytes) in enumerate(self._items):
            if self._droppable(ids):
                del self._items[index]
                self._bytes -= nbytes
                for source_id in ids:
                    self.dropped[source_id] = self.dropped.get(source_id, 0) + 1
                return True
        return False

    def put(self, item: Any, source_ids: Sequence[int] = (), timeout: float | None = None, nbytes: int = 0) -> bool:
        """Queue ``item`` (results for ``source_ids``, holding ``nbytes`` of frames). Makes room by
        dropping the oldest droppable item, else waits up to ``timeout``; ``False`` if it timed out
        or the queue was closed."""
        ids = tuple(source_ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not self._closed and self._full(nbytes):
                if self._drop_one():
                    continue
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._not_full.wait(remaining)
            if self._closed:
                return False
            self._items.append((item, ids, nbytes))
            self._bytes += nbytes
            self.peak_bytes = max(self.peak_bytes, self._bytes)
            self._not_empty.notify()
            return True

    def put_final(self, item: Any) -> None:
        """Queue a last item past the limits (the end marker must always get through)."""
        with self._lock:
            self._items.append((item, (), 0))
            self._not_empty.notify()

    def get(self, timeout: float | None = None) -> Any:
        """The oldest item; raises ``TimeoutError`` after ``timeout`` seconds."""
        with self._lock:
            if not self._not_empty.wait_for(lambda: bool(self._items), timeout):
                raise TimeoutError("no result within the timeout")
            item, _, nbytes = self._items.popleft()
            self._bytes -= nbytes
            self._not_full.notify()
            return item

    def clear(self) -> int:
        """Drop what is waiting (not counted as drops); returns how many items went."""
        with self._lock:
            count = len(self._items)
            self._items.clear()
            self._bytes = 0
            self._not_full.notify_all()
            return count

    def close(self) -> None:
        """Wake every waiting ``put``; later puts are refused."""
        with self._lock:
            self._closed = True
            self._not_full.notify_all()

    @property
    def queued_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
