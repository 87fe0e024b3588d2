"""Every example runs as written (headless: render_boxes shows no window and says so)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import probe_video

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=180, env=env, check=False)


def test_quickstart(clip) -> None:
    done = _run(str(EXAMPLES / "quickstart.py"), clip.video_path)
    assert done.returncode == 0, done.stderr
    assert f"processed {clip.frames} frames" in done.stdout
    assert "no display available" in done.stderr


def test_quickstart_without_arguments_makes_its_own_clip() -> None:
    done = _run(str(EXAMPLES / "quickstart.py"))
    assert done.returncode == 0, done.stderr
    assert "processed 150 frames" in done.stdout


def test_count_objects(clip) -> None:
    done = _run(str(EXAMPLES / "count_objects.py"), clip.video_path)
    assert done.returncode == 0, done.stderr
    assert f"frames={clip.frames}" in done.stdout
    assert "average" in done.stdout and "t=  1.0s" in done.stdout


def test_save_annotated_video(clip, tmp_path) -> None:
    done = _run(str(EXAMPLES / "save_annotated_video.py"), clip.video_path, str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert probe_video(tmp_path / "out" / "annotated.mp4")[:2] == ("h264", clip.frames)
    assert len((tmp_path / "out" / "predictions.jsonl").read_text().splitlines()) == clip.frames


def test_custom_sink(clip) -> None:
    done = _run(str(EXAMPLES / "custom_sink.py"), clip.video_path)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("frame ")]
    assert len(lines) == clip.frames and "objects" in lines[0]


def test_multiple_sources(clip, long_clip) -> None:
    done = _run(str(EXAMPLES / "multiple_sources.py"), clip.video_path, long_clip.video_path)
    assert done.returncode == 0, done.stderr
    assert f"batches={long_clip.frames} sources=2" in done.stdout
    assert "source 1 frame 30:" in done.stdout and "source 0 frame 30:" in done.stdout


def test_custom_logic(clip) -> None:
    done = _run(str(EXAMPLES / "custom_logic.py"), clip.video_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("pipeline started") and done.stdout.rstrip().endswith("pipeline ended")
    assert "frame 31:" in done.stdout and "mean colour" in done.stdout


def test_watchdog(clip) -> None:
    done = _run(str(EXAMPLES / "watchdog.py"), clip.video_path)
    assert done.returncode == 0, done.stderr
    assert "throughput" in done.stdout and "inference p95 ms:" in done.stdout


def test_status_updates(clip) -> None:
    done = _run(str(EXAMPLES / "status_updates.py"), clip.video_path)
    assert done.returncode == 0, done.stderr
    assert "INFERENCE_THREAD_STARTED" in done.stdout and "INFERENCE_THREAD_FINISHED" in done.stdout
    assert "VIDEO_CONSUMPTION_STARTED" in done.stdout


def test_sink_video_and_preview(clip, tmp_path) -> None:
    from tests.servers import free_port

    done = _run(str(EXAMPLES / "sink_video_and_preview.py"), clip.video_path, str(tmp_path / "out"), str(free_port()))
    assert done.returncode == 0, done.stderr
    assert f"wrote {clip.frames} frames" in done.stdout
    lines = (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == clip.frames and '"tracker_id"' in lines[-1]
    assert probe_video(tmp_path / "out" / "annotated.mp4")[:2] == ("h264", clip.frames)
