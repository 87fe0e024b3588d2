"""The benchmark scripts run (a few frames each, no timing asserted), so that they cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_model_stages_benchmark(clip, tmp_path: Path) -> None:
    out = tmp_path / "stages.json"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "model_stages.py"),
            "--video",
            clip.video_path,
            "--frames",
            "8",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["frames"] == 8 and report["frame_size"] == [clip.width, clip.height]
    assert set(report["ms_per_frame"]) == {"decode", "preprocess", "inference", "postprocess"}
    assert "inference" in done.stdout
