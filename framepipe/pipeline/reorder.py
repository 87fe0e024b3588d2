"""Putting results from several inference workers back in the order their batches were made.

Example:
    >>> from framepipe.pipeline.reorder import ReorderBuffer
    >>> buffer = ReorderBuffer()
    >>> buffer.push(1, "b"), buffer.push(0, "a"), buffer.push(2, "c")
    ([], ['a', 'b'], ['c'])
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class ReorderBuffer(Generic[T]):
    """Holds items that arrive early; ``push(sequence, item)`` returns the items now due, in order.

    Sequence numbers start at 0 and every number must be pushed once (a batch that failed
    pushes a placeholder), or later items wait forever.
    """

    def __init__(self) -> None:
        self._next = 0
        self._waiting: dict[int, T] = {}
        self._lock = threading.Lock()

    def push(self, sequence: int, item: T) -> list[T]:
        with self._lock:
            if sequence < self._next or sequence in self._waiting:
                raise ValueError(f"sequence {sequence} was already pushed")
            self._waiting[sequence] = item
            due = []
            while self._next in self._waiting:
                due.append(self._waiting.pop(self._next))
                self._next += 1
            return due

    def __len__(self) -> int:
        with self._lock:
            return len(self._waiting)
