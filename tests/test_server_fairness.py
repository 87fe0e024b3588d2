"""Fairness between requests and a live pipeline on one model: a pipeline on a live source (a clip played
at its own frame rate) and a burst of 16 concurrent HTTP clients share the model's batching executor;
the burst must not starve the camera. Prints the pipeline's frame rate and latency with and without the
burst (the figures of the issue's note); asserts no starvation (no gap of 2 s) and a fair share (the
pipeline, one caller among 17, gets at least half an average client's rate), not a speed. The clients run
in this process too, so on a small machine they take CPU from the pipeline as well."""

from __future__ import annotations

import base64
import itertools
import threading
import time
from typing import Any

import cv2
import requests

from framepipe import InferencePipeline
from framepipe.server import InferenceServer, ServerSettings
from tests.test_server_support import clip_frames

CLIENTS = 16
QUIET_S, BURST_S = 2.5, 4.0


def test_a_request_burst_does_not_starve_a_live_pipeline(long_clip: Any) -> None:
    frames = [
        base64.b64encode(cv2.imencode(".jpg", f)[1].tobytes()).decode() for f in clip_frames(long_clip.video_path, 4)
    ]
    seen: list[tuple[float, float]] = []  # (callback time, latency from decode)
    pipeline = InferencePipeline.init(
        model_id="framepipe-shapes/1",
        video_reference=long_clip.video_path,
        on_prediction=lambda p, f: seen.append((time.monotonic(), time.time() - f.frame_timestamp.timestamp())),
        realtime=True,
    )
    with InferenceServer(port=0, settings=ServerSettings()) as server:  # get_model's manager: the pipeline's model
        pipeline.start(use_main_thread=False)
        try:
            started = time.monotonic()
            while not seen and time.monotonic() - started < 20:
                time.sleep(0.01)
            assert seen, "the pipeline produced nothing"
            quiet_from = time.monotonic()
            time.sleep(QUIET_S)
            burst_from = time.monotonic()
            burst_until = burst_from + BURST_S
            served = [0] * CLIENTS
            runs_before = server.models.add("framepipe-shapes/1").executor.stats.runs

            def client(index: int) -> None:
                session, n = requests.Session(), index
                while time.monotonic() < burst_until:
                    payload: dict[str, Any] = {
                        "model_id": "framepipe-shapes/1",
                        "image": {"type": "base64", "value": frames[n % 4]},
                    }
                    n += 1
                    answer = session.post(f"{server.url}/infer/object_detection", json=payload, timeout=30)
                    assert answer.status_code == 200
                    served[index] += 1

            threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(40)
            executor = server.models.add("framepipe-shapes/1").executor
            runs = executor.stats.runs - runs_before
        finally:
            pipeline.terminate()
            pipeline.join()
    quiet = [s for s in seen if quiet_from <= s[0] < burst_from]
    burst = [s for s in seen if burst_from <= s[0] < burst_until]
    quiet_fps, burst_fps = len(quiet) / QUIET_S, len(burst) / BURST_S

    def p95(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[int(0.95 * (len(ordered) - 1))] * 1000 if ordered else float("nan")

    gaps = [b[0] - a[0] for a, b in itertools.pairwise(burst)]
    print(
        f"pipeline fps quiet={quiet_fps:.1f} burst={burst_fps:.1f}; "
        f"latency p95 quiet={p95([s[1] for s in quiet]):.0f} ms burst={p95([s[1] for s in burst]):.0f} ms; "
        f"max gap in burst={max(gaps, default=0) * 1000:.0f} ms; "
        f"requests served={sum(served)} ({sum(served) / BURST_S:.0f}/s) in {runs} session runs"
    )
    assert sum(served) > CLIENTS
    assert burst and max(gaps, default=0.0) < 2.0, "the pipeline was starved during the burst"
    # fair: the camera, one caller among 17, gets at least half the rate of an average HTTP client
    assert burst_fps >= 0.5 * sum(served) / BURST_S / CLIENTS
