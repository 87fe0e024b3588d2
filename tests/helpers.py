"""Helpers shared by the tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest


def framepipe_threads() -> list[threading.Thread]:
    """framepipe's own threads that are still alive (every framepipe thread is named framepipe-*)."""
    return [t for t in threading.enumerate() if t.name.startswith("framepipe-") and t.is_alive()]


def strip_ids(result: dict[str, Any]) -> dict[str, Any]:
    """A Roboflow prediction dict without its random ``detection_id``s, to compare results."""
    items = [{k: v for k, v in p.items() if k != "detection_id"} for p in result["predictions"]]
    return {**result, "predictions": items}


def wait_for(condition, timeout: float = 10.0, interval: float = 0.01) -> bool:
    """Poll ``condition`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


def probe_video(path: Path) -> tuple[str, int, int, int]:
    """Codec name, decoded frame count, width and height of a video file, as ``ffprobe`` (the tool a
    user would check it with; ``scripts/test.sh`` installs it) reads it. Also checks that the file
    plays in a browser: yuv420p, and for MP4 the index (``moov``) before the media (``mdat``)."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        pytest.fail("ffprobe is missing: install ffmpeg (bash scripts/test.sh does)")
    done = subprocess.run(
        [ffprobe, "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
         "stream=codec_name,nb_read_frames,width,height,pix_fmt", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"ffprobe cannot read {path}: {done.stderr.strip()}"
    stream = json.loads(done.stdout)["streams"][0]
    assert stream["pix_fmt"] == "yuv420p", stream
    if path.suffix == ".mp4":
        head = path.read_bytes()
        assert 0 <= head.find(b"moov") < head.find(b"mdat"), f"{path} is not faststart"
    return stream["codec_name"], int(stream["nb_read_frames"]), int(stream["width"]), int(stream["height"])
