"""The bounded queue in front of the sink, with a policy for when the sink falls behind.

``block``: inference waits for room (nothing is lost: the right choice when every source is a
file). ``drop_oldest``: the oldest waiting result makes room and is counted as dropped (the
right choice for live sources: a slow sink then sees the freshest results and never slows
inference down).

Example:
    >>> from framepipe.pipeline.sink_queue import SinkQueue
    >>> queue = SinkQueue(maxsize=2, policy="drop_oldest")
    >>> for item in ("a", "b", "c"):
    ...     queue.put(item, source_ids=[0])
    >>> queue.get(), queue.dropped
    ('b', {0: 1})
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Sequence
from typing import Any

POLICIES = ("block", "drop_oldest")


class SinkQueue:
    """A bounded FIFO between the inference workers and the sink dispatcher."""

    def __init__(self, maxsize: int, policy: str = "block") -> None:
        if policy not in POLICIES:
            raise ValueError(f"sink queue policy must be one of {POLICIES}, got {policy!r}")
        self.maxsize = max(int(maxsize), 1)
        self.policy = policy
        self._items: collections.deque[tuple[Any, tuple[int, ...]]] = collections.deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False
        self.dropped: dict[int, int] = {}

    def put(self, item: Any, source_ids: Sequence[int] = (), timeout: float | None = None) -> bool:
        """Queue ``item`` (results for ``source_ids``). With ``block`` this waits for room, up to
        ``timeout``; returns ``False`` if it timed out or the queue was closed."""
        with self._lock:
            if self._closed:
                return False
            if len(self._items) >= self.maxsize:
                if self.policy == "drop_oldest":
                    _, old_ids = self._items.popleft()
                    for source_id in old_ids:
                        self.dropped[source_id] = self.dropped.get(source_id, 0) + 1
                elif not self._not_full.wait_for(lambda: len(self._items) < self.maxsize or self._closed, timeout):
                    return False
                if self._closed:
                    return False
            self._items.append((item, tuple(source_ids)))
            self._not_empty.notify()
            return True

    def put_final(self, item: Any) -> None:
        """Queue a last item past the size limit (the end marker must always get through)."""
        with self._lock:
            self._items.append((item, ()))
            self._not_empty.notify()

    def get(self, timeout: float | None = None) -> Any:
        """The oldest item; raises ``TimeoutError`` after ``timeout`` seconds."""
        with self._lock:
            if not self._not_empty.wait_for(lambda: bool(self._items), timeout):
                raise TimeoutError("no result within the timeout")
            item, _ = self._items.popleft()
            self._not_full.notify()
            return item

    def clear(self) -> int:
        """Drop what is waiting (not counted as drops); returns how many items went."""
        with self._lock:
            count = len(self._items)
            self._items.clear()
            self._not_full.notify_all()
            return count

    def close(self) -> None:
        """Wake every waiting ``put``; later puts are refused."""
        with self._lock:
            self._closed = True
            self._not_full.notify_all()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
