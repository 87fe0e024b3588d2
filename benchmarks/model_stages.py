"""Per-frame cost of each stage of a detector on a video: decode, preprocess, inference, postprocess.

    python benchmarks/model_stages.py --video clip.mp4 --model framepipe-shapes/1 [--frames 300] [--json out.json]
        [--batches 1,8,32] [--providers CUDAExecutionProvider,CPUExecutionProvider]

Frames are decoded with PyAV (as framepipe's sources do), then each stage is timed on its own,
one frame at a time, after a warm-up: preprocess, inference, postprocess (decode, NMS, mapping)
and Roboflow's JSON. ``--batches`` also times inference per frame at each batch size (a dynamic-
batch model), through the model's executor. Prints milliseconds per frame (median and p95).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from framepipe.models import InferenceParameters, get_model
from framepipe.sources import open_reader


def measure(
    video: str,
    model_id: str,
    frames: int,
    confidence: float,
    batches: list[int] | None = None,
    providers: list[str] | None = None,
) -> dict[str, Any]:
    model: Any = get_model(model_id, providers=providers)
    reader = open_reader(video)
    decode_ms, images = [], []
    iterator = reader.frames()
    try:
        for _ in range(frames):
            started = time.perf_counter()
            decoded = next(iterator, None)
            if decoded is None:
                break
            images.append(decoded.to_bgr())
            decode_ms.append((time.perf_counter() - started) * 1000)
    finally:
        reader.close()
    parameters = InferenceParameters(confidence=confidence)
    for image in images[:5]:  # warm-up
        tensor, geometries = model.preprocess([image])
        model.postprocess(model.run(tensor), geometries, parameters)
    stages: dict[str, list[float]] = {"preprocess": [], "inference": [], "postprocess": [], "json": []}
    detections = 0
    for image in images:
        t0 = time.perf_counter()
        tensor, geometries = model.preprocess([image])
        t1 = time.perf_counter()
        outputs = model.run(tensor)
        t2 = time.perf_counter()
        results = model.postprocess(outputs, geometries, parameters)
        t3 = time.perf_counter()
        results[0].to_roboflow()
        t4 = time.perf_counter()
        stages["preprocess"].append((t1 - t0) * 1000)
        stages["inference"].append((t2 - t1) * 1000)
        stages["postprocess"].append((t3 - t2) * 1000)
        stages["json"].append((t4 - t3) * 1000)
        detections += len(results[0].detections or [])
    summary = {"decode": decode_ms, **stages}
    by_batch: dict[str, dict[str, float]] = {}
    for size in batches or []:
        if not images or (model.batch_size is not None and size != model.batch_size):
            continue
        chunk = [images[i % len(images)] for i in range(size)]
        model.executor.infer(chunk, parameters)  # warm-up at this size
        times = []
        for _ in range(max(3, min(20, 64 // size))):
            started = time.perf_counter()
            model.executor.infer(chunk, parameters)
            times.append((time.perf_counter() - started) * 1000 / size)
        by_batch[str(size)] = {"median": float(np.median(times)), "p95": float(np.percentile(times, 95))}
    return {
        "video": video,
        "model": model_id,
        "frames": len(images),
        "frame_size": list(images[0].shape[1::-1]) if images else None,
        "input_size": list(model.input_size),
        "provider": model.provider,
        "detections_per_frame": detections / max(len(images), 1),
        "ms_per_frame": {
            name: {"median": float(np.median(v)), "p95": float(np.percentile(v, 95))}
            for name, v in summary.items()
            if v
        },
        "ms_per_frame_by_batch": by_batch,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", required=True)
    parser.add_argument("--model", default="framepipe-shapes/1")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--confidence", type=float, default=0.4)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--batches", default="", help="comma list of batch sizes to time inference at, e.g. 1,8,32")
    parser.add_argument("--providers", default="", help="comma list of ONNX Runtime providers (default: the best here)")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    providers = [p.strip() for p in args.providers.split(",") if p.strip()] or None
    report = measure(args.video, args.model, args.frames, args.confidence, batches, providers)
    print(
        f"{report['model']} on {report['video']}: {report['frames']} frames of {report['frame_size']}, "
        f"input {report['input_size']}, {report['provider']}, {report['detections_per_frame']:.1f} detections/frame"
    )
    print(f"{'stage':<12} {'median ms':>10} {'p95 ms':>8}")
    for name, values in report["ms_per_frame"].items():
        print(f"{name:<12} {values['median']:>10.2f} {values['p95']:>8.2f}")
    for size, values in report["ms_per_frame_by_batch"].items():
        print(f"{'batch ' + size:<12} {values['median']:>10.2f} {values['p95']:>8.2f}  (inference per frame)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
