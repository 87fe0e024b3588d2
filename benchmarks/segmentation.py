"""Per-frame cost of each ``mask_decode_mode`` of a segmentation model on a video.

    python benchmarks/segmentation.py --video clip.mp4 --model framepipe-shapes-seg/1 [--frames 60] [--json out.json]

Frames are decoded once with PyAV; the model runs once per frame; then the postprocessing (NMS,
masks, outlines, JSON) is timed for each mode on the same outputs: ``accurate``, ``tradeoff``
(factor 0.5), ``fast``, and ``accurate`` with ``response_mask_format="rle"`` and with
``keep_masks=True``. Reported per frame: the median and p95 milliseconds, the peak memory the
postprocessing allocates (tracemalloc), and the bytes of the prediction that travels through the
pipeline's queues (outlines, RLE strings, full-frame masks when kept), with the mean instance count.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from typing import Any

import numpy as np

from framepipe.models import get_model
from framepipe.sources import open_reader

MODES: dict[str, dict[str, Any]] = {
    "accurate": {"mask_decode_mode": "accurate"},
    "tradeoff 0.5": {"mask_decode_mode": "tradeoff", "tradeoff_factor": 0.5},
    "fast": {"mask_decode_mode": "fast"},
    "accurate + rle": {"mask_decode_mode": "accurate", "response_mask_format": "rle"},
    "accurate + keep_masks": {"mask_decode_mode": "accurate", "keep_masks": True},
}


def prediction_bytes(prediction: Any) -> int:
    """Bytes a typed prediction carries: columns, outlines, RLE strings and kept masks."""
    found = prediction.detections
    if found is None:
        return 0
    size = found.xyxy.nbytes + found.confidence.nbytes + found.class_id.nbytes
    size += sum(p.nbytes for p in found.polygons or [])
    size += sum(len(r["counts"]) for r in found.rle or [])
    return size + (found.mask.nbytes if found.mask is not None else 0)


def measure(video: str, model_id: str, frames: int, confidence: float) -> dict[str, Any]:
    model: Any = get_model(model_id)
    if model.task_type != "instance-segmentation":
        raise SystemExit(f"{model_id} is a {model.task_type} model, not instance-segmentation")
    reader = open_reader(video)
    runs: list[tuple[list[np.ndarray], Any, tuple[int, ...]]] = []
    try:
        for decoded in reader.frames():
            if len(runs) >= frames:
                break
            image = decoded.to_bgr()
            tensor, geometries = model.preprocess([image])
            runs.append(([np.array(o, copy=True) for o in model.run(tensor)], geometries, image.shape))
    finally:
        reader.close()
    report: dict[str, Any] = {"frames": len(runs), "frame_size": [runs[0][2][1], runs[0][2][0]], "modes": {}}
    for name, options in MODES.items():
        parameters = model.parameters(confidence=confidence, **options)
        for outputs, geometries, _ in runs[:3]:  # warm-up
            model.postprocess(outputs, geometries, parameters)
        times, peaks, sizes, counts = [], [], [], []
        for outputs, geometries, _ in runs:
            tracemalloc.start()
            started = time.perf_counter()
            (prediction,) = model.postprocess(outputs, geometries, parameters)
            json.dumps(prediction.to_roboflow())
            times.append((time.perf_counter() - started) * 1000)
            peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
            tracemalloc.stop()
            sizes.append(prediction_bytes(prediction) / 2**20)
            counts.append(len(prediction.detections))
        # timed again without tracemalloc, which slows allocation-heavy code
        plain = []
        for outputs, geometries, _ in runs:
            started = time.perf_counter()
            (prediction,) = model.postprocess(outputs, geometries, parameters)
            json.dumps(prediction.to_roboflow())
            plain.append((time.perf_counter() - started) * 1000)
        report["modes"][name] = {
            "ms_median": float(np.median(plain)),
            "ms_p95": float(np.percentile(plain, 95)),
            "peak_alloc_mb": float(np.median(peaks)),
            "prediction_mb": float(np.mean(sizes)),
            "instances": float(np.mean(counts)),
        }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", required=True)
    parser.add_argument("--model", required=True, help="a segmentation model id or path")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--confidence", type=float, default=0.4)
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args(argv)
    report = measure(args.video, args.model, args.frames, args.confidence)
    width, height = report["frame_size"]
    print(f"{report['frames']} frames of {width}x{height}, {args.model}")
    print(f"{'mode':24} {'ms median':>10} {'ms p95':>8} {'peak MB':>8} {'pred MB':>8} {'objects':>8}")
    for name, row in report["modes"].items():
        print(
            f"{name:24} {row['ms_median']:10.1f} {row['ms_p95']:8.1f} {row['peak_alloc_mb']:8.1f} "
            f"{row['prediction_mb']:8.2f} {row['instances']:8.1f}"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
