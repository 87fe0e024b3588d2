"""Helpers shared by the tests."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import av


def framepipe_threads() -> list[threading.Thread]:
    """framepipe's own threads that are still alive (every framepipe thread is named framepipe-*)."""
    return [t for t in threading.enumerate() if t.name.startswith("framepipe-") and t.is_alive()]


def wait_for(condition, timeout: float = 10.0, interval: float = 0.01) -> bool:
    """Poll ``condition`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


def probe_video(path: Path) -> tuple[str, int, int, int]:
    """Codec name, decoded frame count, width and height of a video file, read with FFmpeg."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return stream.codec_context.name, frames, stream.codec_context.width, stream.codec_context.height
