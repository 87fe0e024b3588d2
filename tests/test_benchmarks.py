"""The benchmark scripts run (a few frames each, no timing asserted), so that they cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _run(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``benchmarks/<script>`` with ``args`` in this Python; its output is captured."""
    command = [sys.executable, str(BENCHMARKS / script), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def test_model_stages_benchmark(clip, tmp_path: Path) -> None:
    out = tmp_path / "stages.json"
    done = _run(
        "model_stages.py",
        "--video",
        clip.video_path,
        "--frames",
        "8",
        "--batches",
        "1,4",
        "--json",
        str(out),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["frames"] == 8 and report["frame_size"] == [clip.width, clip.height]
    assert set(report["ms_per_frame"]) == {"decode", "preprocess", "inference", "postprocess", "json"}
    assert set(report["ms_per_frame_by_batch"]) == {"1", "4"}
    assert "inference" in done.stdout


def test_throughput_benchmark(clip, tmp_path: Path) -> None:
    out = tmp_path / "throughput.json"
    done = _run(
        "throughput.py",
        "--video",
        clip.video_path,
        "--model",
        "framepipe-shapes/1",
        "--rounds",
        "1",
        "--frames",
        "12",
        "--json",
        str(out),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    for system in ("framepipe", "bare"):
        assert report[system]["frames"] == 12
        assert {"fps", "cpu_ms_per_frame", "peak_rss_mb", "import_s", "first_prediction_s"} <= set(report[system])
    assert report["ceiling"]["fps"] > 0 and report["ratio_fps"] > 0 and report["ratio_ceiling"] > 0
    assert "ratio_fps=" in done.stdout


def test_latency_benchmark(clip, tmp_path: Path) -> None:
    out = tmp_path / "latency.json"
    done = _run(
        "latency.py",
        "--model",
        "framepipe-shapes/1",
        "--video",
        clip.video_path,
        "--seconds",
        "2",
        "--json",
        str(out),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["frames_delivered"] > 0 and report["latency_ms"]["p50"] > 0
    assert report["single_frame_inference_ms"] > 0 and isinstance(report["backlog_grows"], bool)
    assert "p95/inference=" in done.stdout


def test_sinks_benchmark(clip, tmp_path: Path) -> None:
    out, png = tmp_path / "sinks.json", tmp_path / "frame.png"
    done = _run(
        "sinks.py", "--video", clip.video_path, "--frames", "10", "--json", str(out), "--png", str(png), timeout=120
    )
    assert done.returncode == 0, done.stderr
    names = [row["sink"] for row in json.loads(out.read_text())["sinks"]]
    assert names[:4] == ["render_boxes", "VideoFileSink", "JsonlSink", "UDPSink"] and png.stat().st_size > 0


def test_cache_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "cache.json"
    done = _run("cache.py", "--processes", "3", "--hits", "1", "--json", str(out), timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["race"]["weights_downloads"] == 1 and report["race"]["processes_that_downloaded"] == 1
    assert report["hit"]["count"] == 1 and report["hit"]["session_ms_median"] > report["hit"]["fetch_ms_median"] > 0
    assert "race of 3 processes" in done.stdout


def test_segmentation_benchmark(clip, tmp_path: Path) -> None:
    from tests.test_tasks_pipeline import folder_for

    model = folder_for("instance-segmentation", tmp_path)
    out = tmp_path / "seg.json"
    done = _run(
        "segmentation.py", "--video", clip.video_path, "--model", str(model), "--frames", "4", "--json", str(out),
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    modes = report["modes"]
    assert report["frames"] == 4 and set(modes) >= {"accurate", "fast", "accurate + keep_masks"}
    assert all(row["instances"] == 2 for row in modes.values())
    # kept masks are two full frames of bools; outlines alone are a few kilobytes
    assert modes["accurate + keep_masks"]["prediction_mb"] >= 2 * clip.width * clip.height / 2**20
    assert modes["accurate"]["prediction_mb"] < 0.05
