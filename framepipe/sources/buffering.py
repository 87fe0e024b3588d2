"""A source's frame buffer, with Roboflow's filling and consumption strategies.

Filling (what the decoder does when the buffer is full): ``WAIT`` blocks until there is room
(every frame is kept: files); ``DROP_OLDEST`` throws the oldest buffered frame away (the freshest
frames survive: live streams); ``DROP_LATEST`` throws the new frame away. While the consumer is
slower than the source, ``ADAPTIVE_DROP_OLDEST`` also drops the frames waiting as soon as a newer
one comes (the consumer always gets the freshest frame), and ``ADAPTIVE_DROP_LATEST`` skips new
frames before they are converted to BGR, saving that work. Consumption: ``LAZY`` takes the
oldest frame, ``EAGER`` the newest (older ones are dropped). Every dropped frame is counted, with its cause.

Example:
    >>> from framepipe.sources.buffering import FrameBuffer
    >>> from framepipe.sources.entities import BufferConsumptionStrategy, BufferFillingStrategy
    >>> buffer = FrameBuffer(2, BufferFillingStrategy.DROP_OLDEST, BufferConsumptionStrategy.LAZY)
    >>> for item in "abc":
    ...     buffer.put(item)
    True
    True
    True
    >>> buffer.get(timeout=0), buffer.dropped
    ('b', 1)
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

from framepipe.sources.entities import BufferConsumptionStrategy, BufferFillingStrategy

ADAPTIVE = (BufferFillingStrategy.ADAPTIVE_DROP_OLDEST, BufferFillingStrategy.ADAPTIVE_DROP_LATEST)
MAX_ADAPTIVE_DROPS_IN_ROW = 16
_END = object()


class FrameBuffer:
    """Bounded frames between a decoder thread and its consumer. ``on_drop(item, cause)`` is
    called for every frame thrown away (not for items skipped before they were made)."""

    def __init__(
        self,
        size: int,
        filling: BufferFillingStrategy,
        consumption: BufferConsumptionStrategy,
        on_drop: Callable[[Any, str], None] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"buffer size must be at least 1, got {size}")
        self.size = size
        self.filling = filling
        self.consumption = consumption
        self._on_drop = on_drop
        self._items: collections.deque[Any] = collections.deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._ended = False
        self._closed = False
        self.dropped = 0
        self._reads: collections.deque[float] = collections.deque(maxlen=30)
        self._writes: collections.deque[float] = collections.deque(maxlen=30)
        self._skipped_in_row = 0

    def _drop(self, item: Any, cause: str) -> None:
        self.dropped += 1
        if self._on_drop is not None:
            self._on_drop(item, cause)

    # -- decoder side -------------------------------------------------------------------------
    def should_skip(self) -> bool:
        """Called before each new frame is converted. While the consumer reads slower than the
        source writes and a frame is already waiting: ``ADAPTIVE_DROP_LATEST`` says to skip the
        new frame (at most 16 in a row), ``ADAPTIVE_DROP_OLDEST`` drops the waiting frames so that
        the new one is next. Either is counted as a drop ("ADAPTIVE strategy")."""
        if self.filling not in ADAPTIVE:
            return False
        stale: list[Any] = []
        with self._lock:
            behind = bool(self._items) and _rate(self._reads) + 1.0 < _rate(self._writes)
            if behind and self.filling is BufferFillingStrategy.ADAPTIVE_DROP_OLDEST:
                # The frame coming is fresher than those waiting: they go, it stays (skipping it
                # instead, as Roboflow does, hands the consumer a frame one consumer period old).
                stale = list(self._items)
                self._items.clear()
                self.dropped += len(stale)
                self._not_full.notify_all()
                skip = False
            elif behind and self._skipped_in_row < MAX_ADAPTIVE_DROPS_IN_ROW:
                self._skipped_in_row += 1
                self._writes.append(time.monotonic())
                self.dropped += 1
                skip = True
            else:
                self._skipped_in_row = 0
                skip = False
        if self._on_drop is not None:
            for item in stale:
                self._on_drop(item, "ADAPTIVE strategy")
            if skip:
                self._on_drop(None, "ADAPTIVE strategy")
        return skip

    def put(self, item: Any, stop: threading.Event | None = None, poll: float = 0.05) -> bool:
        """Add a frame; ``False`` when it was not added (dropped, or the buffer was closed/stopped)."""
        dropped: tuple[Any, str] | None = None
        with self._lock:
            if self._closed:
                return False
            self._writes.append(time.monotonic())
            if len(self._items) >= self.size:
                if self.filling is BufferFillingStrategy.WAIT:
                    while len(self._items) >= self.size and not self._closed:
                        if stop is not None and stop.is_set():
                            return False
                        self._not_full.wait(poll)
                    if self._closed:
                        return False
                elif self.filling in (BufferFillingStrategy.DROP_LATEST, BufferFillingStrategy.ADAPTIVE_DROP_LATEST):
                    self.dropped += 1
                    dropped = (item, "DROP_LATEST strategy")
                else:
                    oldest = self._items.popleft()
                    self.dropped += 1
                    dropped = (oldest, "DROP_OLDEST strategy")
            if dropped is None or dropped[0] is not item:
                self._items.append(item)
                self._not_empty.notify()
        if dropped is not None and self._on_drop is not None:
            self._on_drop(*dropped)
        return dropped is None or dropped[0] is not item

    def end(self) -> None:
        """No more frames: ``get`` returns ``None`` once the buffer is empty."""
        with self._lock:
            self._ended = True
            self._not_empty.notify_all()

    def close(self) -> None:
        """Throw away what is buffered (not counted as drops) and refuse new frames."""
        with self._lock:
            self._closed = True
            self._ended = True
            self._items.clear()
            self._not_full.notify_all()
            self._not_empty.notify_all()

    # -- consumer side ------------------------------------------------------------------------
    def get(self, timeout: float | None = None) -> Any:
        """The next frame by the consumption strategy; ``None`` once ended and empty. Raises
        ``TimeoutError`` after ``timeout`` seconds without a frame."""
        stale: list[Any] = []
        with self._lock:
            if not self._not_empty.wait_for(lambda: bool(self._items) or self._ended, timeout):
                raise TimeoutError("no frame within the timeout")
            if not self._items:
                return None
            if self.consumption is BufferConsumptionStrategy.EAGER:
                while len(self._items) > 1:
                    stale.append(self._items.popleft())
                    self.dropped += 1
            item = self._items.popleft()
            self._reads.append(time.monotonic())
            self._not_full.notify()
        for old in stale:
            if self._on_drop is not None:
                self._on_drop(old, "EAGER consumption")
        return item

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def _rate(times: collections.deque[float]) -> float:
    """Events per second over the recorded times (0 with fewer than 10 of them)."""
    if len(times) < 10:
        return 0.0
    span = times[-1] - times[0]
    return (len(times) - 1) / span if span > 0 else 0.0
