"""When to try a lost stream again: exponential backoff with jitter, capped, optionally limited.

Example:
    >>> import random
    >>> from framepipe.sources.reconnect import Backoff
    >>> backoff = Backoff(first=0.25, cap=2.0, rng=random.Random(0))
    >>> [round(backoff.next_delay(), 2) for _ in range(6)]
    [0.23, 0.44, 0.71, 1.26, 1.51, 1.4]
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays ``first * 2**n`` up to ``cap``, each scaled by a random factor in [0.5, 1] so that
    many cameras that failed together do not all retry together. ``max_attempts`` (``None``:
    forever) bounds the tries after one failure; ``reset()`` after a success."""

    first: float = 0.25
    cap: float = 2.0
    max_attempts: int | None = None
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def __post_init__(self) -> None:
        if self.first <= 0 or self.cap < self.first:
            raise ValueError(f"need 0 < first <= cap, got first={self.first} cap={self.cap}")

    @property
    def exhausted(self) -> bool:
        return self.max_attempts is not None and self.attempts >= self.max_attempts

    def next_delay(self) -> float:
        """The wait before the next try (and count it)."""
        base = min(self.cap, self.first * 2**self.attempts)
        self.attempts += 1
        return base * self.rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.attempts = 0
