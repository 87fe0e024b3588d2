"""The demo end to end: `framepipe demo` as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from framepipe.demo.run import run_demo
from tests.helpers import probe_video


def _summary(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line and " " not in line.split("=")[0])


def test_demo_command_scores_its_clip_and_writes_outputs(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "framepipe", "demo", "--seconds", "4", "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = _summary(done.stdout)
    assert int(summary["frames"]) == 120
    assert float(summary["precision"]) >= 0.9 and float(summary["recall"]) >= 0.9, summary
    assert float(summary["fps"]) > 0
    assert float(summary["latency_p50_ms"]) <= float(summary["latency_p95_ms"])
    assert probe_video(out / "annotated.mp4") == ("h264", 120, 640, 360)
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 120 and json.loads(lines[0])["frame_id"] == 1
    assert "CPUExecutionProvider" in done.stderr  # the one provider log line


def test_demo_on_a_given_video_without_truth_omits_scores(clip, tmp_path: Path) -> None:
    video = tmp_path / "plain.mp4"
    video.write_bytes(Path(clip.video_path).read_bytes())  # same clip, no ground truth beside it
    report = run_demo(video=video, out=tmp_path / "out", progress=False)
    assert report.precision is None and report.recall is None
    assert report.frames == clip.frames
    assert not any(line.startswith("precision=") for line in report.summary_lines())


def test_demo_cli_reports_a_missing_video_clearly(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "framepipe", "demo", "--video", str(tmp_path / "none.mp4"), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "none.mp4" in done.stderr and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr
