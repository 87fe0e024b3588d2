"""The pipeline's view of its sources: which are live, which are up, opening them all at once,
and Roboflow's per-source controls by id.

Example:
    >>> from framepipe.pipeline.sources import is_live
    >>> is_live("rtsp://cam/live"), is_live("clip.mp4"), is_live("clip.mp4", realtime=True), is_live(0)
    (True, False, True, True)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from framepipe.sources.readers import STREAM_PREFIXES

__all__ = ["each_source", "is_live", "open_sources", "source_up"]


def is_live(reference: str | int | os.PathLike[str], realtime: bool = False) -> bool:
    """Whether a reference is a live source (stream, webcam) or a file played in real time."""
    if realtime or isinstance(reference, int):
        return True
    return os.fspath(reference).lower().startswith(STREAM_PREFIXES)


def source_up(source: Any) -> bool:
    """Connected and delivering (not ended, not reconnecting, not paused)."""
    state = getattr(source, "is_producing", None)
    if callable(state):
        return bool(state())
    return bool(source.is_alive)


def open_sources(sources: Sequence[Any]) -> None:
    """Start every source at once, so that ten cameras that never answer cost one
    ``open_timeout``, not ten; the first error (by source order) raises."""
    errors: dict[int, BaseException] = {}

    def open_one(index: int, source: Any) -> None:
        try:
            source.start()
        except BaseException as error:
            errors[index] = error

    if len(sources) == 1:
        open_one(0, sources[0])
    else:
        openers = [
            threading.Thread(target=open_one, args=(i, s), name=f"framepipe-open-{s.source_id}", daemon=True)
            for i, s in enumerate(sources)
        ]
        for opener in openers:
            opener.start()
        for opener in openers:
            opener.join()
    if errors:
        raise errors[min(errors)]


def each_source(sources: Sequence[Any], source_id: int | None, action: str) -> None:
    """Call ``action`` (``pause``, ``mute``, ``resume``) on ``source_id``, or on every source."""
    chosen = sources if source_id is None else [s for s in sources if s.source_id == source_id]
    if not chosen:
        raise ValueError(f"no source with id {source_id}")
    for source in chosen:
        getattr(source, action)()
