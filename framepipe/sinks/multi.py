"""``multi_sink``: several sinks for one pipeline, each failure isolated.

Example:
    >>> from functools import partial
    >>> from framepipe.sinks import multi_sink, render_boxes
    >>> calls = []
    >>> sink = partial(multi_sink, sinks=[lambda p, f: calls.append(f), lambda p, f: 1 / 0])
    >>> sink({"predictions": []}, "frame")
    >>> calls
    ['frame']
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

logger = logging.getLogger("framepipe.sinks")


def multi_sink(predictions: Any, video_frame: Any, sinks: Sequence[Callable[[Any, Any], None]]) -> None:
    """Call every sink in order with the same arguments; one that raises is logged and the others
    still run. Use it with ``functools.partial(multi_sink, sinks=[...])``."""
    for sink in sinks:
        try:
            sink(predictions, video_frame)
        except Exception:
            logger.exception("sink %s failed", getattr(sink, "__name__", repr(sink)))
