"""Pipelines that share one model: throughput, session runs and batch sizes, or the CPU a live
camera costs.

    python benchmarks/shared_model.py --video clip.mp4 [--model framepipe-shapes/1] [--pipelines 2] [--json out.json]
    python benchmarks/shared_model.py --video clip.mp4 --cameras 1 --seconds 20     # live: CPU per camera

Files: ``--pipelines`` pipelines over the same file at once, every frame, a no-op sink; prints
frames per second over all of them, ONNX Runtime session runs (counted on
``onnxruntime.InferenceSession.run``) and frames per run. Cameras (``--cameras N``): N pipelines
on the file played in real time (as a camera delivers it, looped), for ``--seconds``; prints the
process's CPU time per second of wall clock (100 % = one core) per camera, and frames delivered.
Only the public ``InferencePipeline.init`` is used, so the same script measures any version.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from typing import Any


def count_runs() -> dict[str, list[int]]:
    """Patch ``InferenceSession.run`` to record the batch size of every run."""
    import onnxruntime as ort

    record: dict[str, list[int]] = {"batches": []}
    lock = threading.Lock()
    original = ort.InferenceSession.run

    def run(self: Any, names: Any, feed: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            record["batches"].append(int(next(iter(feed.values())).shape[0]))
        return original(self, names, feed, *args, **kwargs)

    ort.InferenceSession.run = run
    return record


def files(video: str, model: str, pipelines: int) -> dict[str, Any]:
    from framepipe import InferencePipeline

    record = count_runs()
    counts = [0] * pipelines

    def sink(index: int) -> Any:
        def on_prediction(prediction: Any, frame: Any) -> None:
            counts[index] += 1

        return on_prediction

    built = [InferencePipeline.init(video, model, sink(i)) for i in range(pipelines)]
    record["batches"].clear()  # only the runs of the pipelines, not of loading
    started = time.perf_counter()
    for pipeline in built:
        pipeline.start(use_main_thread=False)
    for pipeline in built:
        pipeline.join()
    wall = time.perf_counter() - started
    frames = sum(counts)
    runs = len(record["batches"])
    return {
        "pipelines": pipelines,
        "frames": frames,
        "fps": frames / wall,
        "session_runs": runs,
        "frames_per_run": frames / max(runs, 1),
        "largest_batch": max(record["batches"], default=0),
    }


def cameras(video: str, model: str, count: int, seconds: float) -> dict[str, Any]:
    from framepipe import InferencePipeline

    delivered = [0] * count

    def sink(index: int) -> Any:
        def on_prediction(prediction: Any, frame: Any) -> None:
            delivered[index] += 1

        return on_prediction

    options = _looping()
    built = [InferencePipeline.init(video, model, sink(i), realtime=True, source_options=options) for i in range(count)]
    for pipeline in built:
        pipeline.start(use_main_thread=False)
    time.sleep(2.0)  # warm-up: sessions, first frames
    before = sum(delivered)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    frames = sum(delivered) - before
    for pipeline in built:
        pipeline.terminate()
    for pipeline in built:
        pipeline.join()
    return {
        "cameras": count,
        "seconds": wall,
        "cpu_percent_per_camera": 100 * cpu / wall / count,
        "fps_per_camera": frames / wall / count,
        "cores": os.cpu_count(),
    }


def _looping() -> Any:
    from framepipe.sources import SourceOptions

    return SourceOptions(loop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", required=True)
    parser.add_argument("--model", default="framepipe-shapes/1")
    parser.add_argument("--pipelines", type=int, default=2)
    parser.add_argument("--cameras", type=int, default=0, help="measure live cameras instead of files")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if args.cameras:
        report = cameras(args.video, args.model, args.cameras, args.seconds)
        print(
            f"{report['cameras']} live camera(s), {report['seconds']:.1f} s: "
            f"CPU {report['cpu_percent_per_camera']:.1f} % of a core per camera, "
            f"{report['fps_per_camera']:.1f} frames/s per camera"
        )
    else:
        report = files(args.video, args.model, args.pipelines)
        print(
            f"{report['pipelines']} pipelines on one model: {report['frames']} frames at {report['fps']:.1f} fps, "
            f"{report['session_runs']} session runs ({report['frames_per_run']:.2f} frames a run, "
            f"largest batch {report['largest_batch']})"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
