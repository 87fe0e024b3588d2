"""Live latency: a source at its own pace (a file played in real time, or an RTSP stream), the
pipeline with live defaults, and how long each frame takes from capture to the sink.

    python benchmarks/latency.py --model framepipe-shapes/1 --video clip.mp4 [--seconds 60] [--json out.json]
    python benchmarks/latency.py --model my-model/3 --rtsp rtsp://127.0.0.1:8554/live

Reports capture-to-sink latency p50/p95/p99, frames captured, delivered and dropped, delivered
fps, the single-frame inference time of the model (one session, all cores) and the ratio of p95
latency to it, and whether the backlog grows: the median latency of the last third of the run
against the first third. The file is looped, so that any length of run works.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from datetime import datetime
from typing import Any

import numpy as np


def single_frame_inference_ms(model_id: str, runs: int = 20) -> float:
    """Median time of one ``run`` on one preprocessed frame, with all cores, nothing else running."""
    from framepipe.models import load_model

    model = load_model(model_id)
    width, height = model.input_size
    tensor, _ = model.preprocess([np.zeros((height, width, 3), np.uint8)])
    for _ in range(3):
        model.run(tensor)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        model.run(tensor)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(model_id: str, reference: str, seconds: float, workers: int | None) -> dict[str, Any]:
    from framepipe import InferencePipeline
    from framepipe.sources import SourceOptions

    latencies: list[tuple[float, float]] = []
    lock = threading.Lock()
    started = time.monotonic()

    def on_prediction(prediction: Any, frame: Any) -> None:
        latency = (datetime.now() - frame.frame_timestamp).total_seconds() * 1000
        with lock:
            latencies.append((time.monotonic() - started, latency))

    is_file = "://" not in reference
    pipeline = InferencePipeline.init(
        reference,
        model_id,
        on_prediction,
        realtime=is_file,
        source_options=SourceOptions(loop=is_file),
        inference_workers=workers,
    )
    pipeline.start(use_main_thread=False)
    warmup = 2.0
    time.sleep(warmup + seconds)
    pipeline.terminate()
    pipeline.join()
    source = pipeline.sources[0]
    snapshot = pipeline.metrics()
    measured = [(t, v) for t, v in latencies if t >= warmup]
    values = [v for _, v in measured]
    third = max(len(measured) // 3, 1)
    first_third = statistics.median(v for _, v in measured[:third])
    last_third = statistics.median(v for _, v in measured[-third:])
    return {
        "source": reference,
        "model": model_id,
        "seconds": seconds,
        "workers": pipeline.inference_workers,
        "frames_captured": source.frames_decoded,
        "frames_delivered": snapshot.sources[0].dispatched,
        "frames_dropped": snapshot.sources[0].dropped,
        "delivered_fps": len(measured) / seconds,
        "latency_ms": {
            "p50": float(np.percentile(values, 50)),
            "p95": float(np.percentile(values, 95)),
            "p99": float(np.percentile(values, 99)),
        },
        "latency_first_third_p50_ms": first_third,
        "latency_last_third_p50_ms": last_third,
        "backlog_grows": last_third > 1.5 * first_third + 20,
        "stages_ms": {
            stage: {"p50": 1000 * q[0.5], "p95": 1000 * q[0.95]} for stage, q in snapshot.latency.get(0, {}).items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--video", help="a file, played at its own frame rate and looped")
    group.add_argument("--rtsp", help="an RTSP URL")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured time, after 2 s of warm-up")
    parser.add_argument("--workers", type=int, help="inference workers (default: framepipe's choice)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    inference_ms = single_frame_inference_ms(args.model)
    report = measure(args.model, args.video or args.rtsp, args.seconds, args.workers)
    report["single_frame_inference_ms"] = inference_ms
    report["p95_over_inference"] = report["latency_ms"]["p95"] / inference_ms
    latency = report["latency_ms"]
    print(
        f"{report['source']}: {report['seconds']:.0f} s, {report['workers']} workers, "
        f"delivered {report['delivered_fps']:.1f} fps ({report['frames_delivered']} of {report['frames_captured']} "
        f"frames, {report['frames_dropped']} dropped)"
    )
    print(
        f"latency ms p50={latency['p50']:.1f} p95={latency['p95']:.1f} p99={latency['p99']:.1f}; "
        f"single-frame inference {inference_ms:.1f} ms; p95/inference={report['p95_over_inference']:.2f}"
    )
    print(
        f"backlog: median latency first third {report['latency_first_third_p50_ms']:.1f} ms, last third "
        f"{report['latency_last_third_p50_ms']:.1f} ms -> {'GROWS' if report['backlog_grows'] else 'steady'}"
    )
    stages = ", ".join(f"{stage} {v['p50']:.1f}/{v['p95']:.1f}" for stage, v in report["stages_ms"].items())
    print(f"stages ms p50/p95: {stages}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    sys.exit(0)


if __name__ == "__main__":
    main()
