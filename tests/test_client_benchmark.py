"""benchmarks/server.py runs (a few requests, no timing asserted), so that it cannot rot: it starts
``framepipe serve``, loads it at two concurrencies, reads the batches from /metrics, samples the
server's RSS and measures the in-process ceiling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "server.py"


def test_server_benchmark(clip: Any, tmp_path: Path) -> None:
    out = tmp_path / "server.json"
    command = [sys.executable, str(SCRIPT), "--video", str(clip.video_path), "--frames", "3", "--requests", "8"]
    command += ["--concurrency", "1,3", "--json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [run["concurrency"] for run in report["runs"]] == [1, 3]
    for run in report["runs"]:
        assert run["errors"] == 0 and run["status_5xx"] == 0 and run["statuses"] == {"200": 8}
        assert run["batches"]["frames"] == 8 and 1 <= run["batches"]["runs"] <= 8  # every request ran once
        assert run["server_peak_rss_mb"] > 50 and run["rps"] > 0 and run["p50_ms"] <= run["p99_ms"]
    assert report["ceiling"]["rps"] > 0 and report["ceiling"]["infer_p95_ms"] > 0
    assert report["p95_c1_vs_infer"] > 0
