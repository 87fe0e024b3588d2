"""File throughput: framepipe against a bare sequential loop and against inference alone.

    python benchmarks/throughput.py --video clip.mp4 --model framepipe-shapes/1 \
        [--rounds 3] [--frames N] [--json out.json]

Each round runs, as separate processes and in alternating order:

- ``framepipe``: ``InferencePipeline`` over the file, every frame, a no-op sink;
- ``bare``: the loop people write by hand: OpenCV read, letterbox, the same ONNX Runtime session
  settings (all cores), numpy decoding and NMS, one frame after the other;

and once per round the ``ceiling``: inference alone on a ready tensor, in the best of one
session with all cores, two one-thread sessions in parallel, and batches of 2.

For each system: fps (median, min, max over rounds), CPU milliseconds per frame, peak RSS, the
time to import it, and the time from init to the first prediction. Then ``ratio_fps``
(framepipe / bare) and ``ratio_ceiling`` (framepipe / ceiling). Compare figures only within one
run: machines of the same kind differ up to 2x in inference speed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

CONFIDENCE = 0.25
IOU = 0.7


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_framepipe(video: str, model: str, frames: int | None) -> dict[str, Any]:
    started = time.perf_counter()
    from framepipe import InferencePipeline

    import_s = time.perf_counter() - started
    count = 0
    first: list[float] = []
    holder: dict[str, Any] = {}

    def on_prediction(prediction: Any, frame: Any) -> None:
        nonlocal count
        if not first:
            first.append(time.perf_counter())
        count += 1
        if frames is not None and count >= frames:
            holder["pipeline"].terminate()

    init_at = time.perf_counter()
    pipeline = InferencePipeline.init(video, model, on_prediction, confidence=CONFIDENCE, iou_threshold=IOU)
    holder["pipeline"] = pipeline
    cpu = time.process_time()
    start = time.perf_counter()
    pipeline.start()
    pipeline.join()
    elapsed = time.perf_counter() - start
    return {
        "frames": count,
        "fps": count / elapsed,
        "cpu_ms_per_frame": (time.process_time() - cpu) * 1000 / max(count, 1),
        "peak_rss_mb": _rss_mb(),
        "import_s": import_s,
        "first_prediction_s": first[0] - init_at if first else None,
        "workers": pipeline.inference_workers,
    }


def _letterbox(image: Any, width: int, height: int) -> Any:
    import cv2
    import numpy as np

    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = round(w * scale), round(h * scale)
    canvas = np.full((height, width, 3), 114, np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return canvas, scale, left, top


def _nms(boxes: Any, scores: Any, threshold: float) -> list[int]:
    import numpy as np

    order = np.argsort(-scores)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        xx1 = np.maximum(boxes[best, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[best, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[best, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[best, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        order = rest[inter / (areas[best] + areas[rest] - inter + 1e-9) <= threshold]
    return keep


def run_bare(video: str, weights: str, width: int, height: int, frames: int | None) -> dict[str, Any]:
    started = time.perf_counter()
    import cv2
    import numpy as np
    import onnxruntime as ort

    import_s = time.perf_counter() - started
    init_at = time.perf_counter()
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(weights, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    capture = cv2.VideoCapture(video)
    count, first, kept = 0, None, 0
    cpu, start = time.process_time(), time.perf_counter()
    while frames is None or count < frames:
        ok, frame = capture.read()
        if not ok:
            break
        canvas, scale, left, top = _letterbox(frame, width, height)
        tensor = canvas[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255
        output = session.run(None, {name: tensor})[0][0].T  # [N, 4 + nc]
        scores = output[:, 4:].max(axis=1)
        mask = scores >= CONFIDENCE
        rows, conf = output[mask], scores[mask]
        if len(rows):
            boxes = np.stack(
                [
                    rows[:, 0] - rows[:, 2] / 2,
                    rows[:, 1] - rows[:, 3] / 2,
                    rows[:, 0] + rows[:, 2] / 2,
                    rows[:, 1] + rows[:, 3] / 2,
                ],
                axis=1,
            )
            keep = _nms(boxes, conf, IOU)
            boxes = (boxes[keep] - [left, top, left, top]) / scale
            kept += len(keep)
        count += 1
        if first is None:
            first = time.perf_counter()
    elapsed = time.perf_counter() - start
    capture.release()
    return {
        "frames": count,
        "fps": count / elapsed,
        "cpu_ms_per_frame": (time.process_time() - cpu) * 1000 / max(count, 1),
        "peak_rss_mb": _rss_mb(),
        "import_s": import_s,
        "first_prediction_s": first - init_at if first else None,
        "detections": kept,
    }


def run_ceiling(weights: str, width: int, height: int, iterations: int) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort

    cores = os.cpu_count() or 1

    def session(threads: int) -> Any:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        return ort.InferenceSession(weights, options, providers=["CPUExecutionProvider"])

    one = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
    results: dict[str, float] = {}

    def timed(sessions: list[Any], tensor: Any, per_session: int) -> float:
        name = sessions[0].get_inputs()[0].name
        for s in sessions:
            s.run(None, {name: tensor})

        def work(s: Any) -> None:
            for _ in range(per_session):
                s.run(None, {name: tensor})

        threads = [threading.Thread(target=work, args=(s,)) for s in sessions]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return len(sessions) * per_session * len(tensor) / (time.perf_counter() - started)

    results["one session, all cores"] = timed([session(cores)], one, iterations)
    if cores >= 2:
        results[f"{cores} one-thread sessions in parallel"] = timed(
            [session(1) for _ in range(cores)], one, iterations // cores or 1
        )
    batched = session(cores)
    if batched.get_inputs()[0].shape[0] != 1:
        results["batches of 2, all cores"] = timed([batched], np.concatenate([one, one]), iterations // 2 or 1)
    best = max(results, key=lambda k: results[k])
    return {"fps": results[best], "configuration": best, "all": results}


def _model_facts(model: str) -> tuple[str, int, int]:
    """Weights path and input size of a model id or path."""
    from framepipe.models import load_model

    loaded = load_model(model)
    return str(loaded.artifacts.weights_path), loaded.input_size[0], loaded.input_size[1]


def _child(args: list[str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark process {args[:2]} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    fps = [r["fps"] for r in runs]
    summary: dict[str, Any] = {"fps": statistics.median(fps), "fps_min": min(fps), "fps_max": max(fps)}
    for key in ("cpu_ms_per_frame", "peak_rss_mb", "import_s", "first_prediction_s"):
        values = [r[key] for r in runs if r.get(key) is not None]
        summary[key] = statistics.median(values) if values else None
    summary["frames"] = runs[0]["frames"]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", required=True)
    parser.add_argument("--model", required=True, help="model id, model folder or .onnx path")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, help="only the first N frames of each run")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--worker", choices=["framepipe", "bare", "ceiling"], help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "framepipe":
        print(json.dumps(run_framepipe(args.video, args.model, args.frames)))
        return
    if args.worker == "bare":
        print(json.dumps(run_bare(args.video, args.weights, args.size[0], args.size[1], args.frames)))
        return
    if args.worker == "ceiling":
        print(json.dumps(run_ceiling(args.weights, args.size[0], args.size[1], min(args.frames or 60, 60))))
        return
    weights, width, height = _model_facts(args.model)
    common = ["--video", args.video, "--model", args.model] + (["--frames", str(args.frames)] if args.frames else [])
    sized = ["--weights", weights, "--size", str(width), str(height)]
    runs: dict[str, list[dict[str, Any]]] = {"framepipe": [], "bare": [], "ceiling": []}
    for round_index in range(args.rounds):
        order = ["framepipe", "bare"] if round_index % 2 == 0 else ["bare", "framepipe"]
        for system in order:
            runs[system].append(_child([*common, "--worker", system, *(sized if system == "bare" else [])]))
        runs["ceiling"].append(_child([*common, "--worker", "ceiling", *sized]))
        print(
            f"round {round_index + 1}/{args.rounds}: framepipe {runs['framepipe'][-1]['fps']:.1f} fps, bare "
            f"{runs['bare'][-1]['fps']:.1f} fps, ceiling {runs['ceiling'][-1]['fps']:.1f} fps",
            file=sys.stderr,
        )
    ceiling = {
        "fps": statistics.median(r["fps"] for r in runs["ceiling"]),
        "configuration": max(
            set(r["configuration"] for r in runs["ceiling"]), key=[r["configuration"] for r in runs["ceiling"]].count
        ),
        "rounds": [r["all"] for r in runs["ceiling"]],
    }
    report: dict[str, Any] = {
        "video": args.video,
        "model": args.model,
        "input_size": [width, height],
        "cpu_count": os.cpu_count(),
        "framepipe": _summary(runs["framepipe"]),
        "bare": _summary(runs["bare"]),
        "ceiling": ceiling,
    }
    report["ratio_fps"] = report["framepipe"]["fps"] / report["bare"]["fps"]
    report["ratio_ceiling"] = report["framepipe"]["fps"] / ceiling["fps"]
    print(
        f"{'system':<10} {'fps':>7} {'min':>7} {'max':>7} {'cpu ms/f':>9} {'rss MB':>7} {'import s':>9} {'first s':>8}"
    )
    for system in ("framepipe", "bare"):
        r = report[system]
        print(
            f"{system:<10} {r['fps']:>7.1f} {r['fps_min']:>7.1f} {r['fps_max']:>7.1f} {r['cpu_ms_per_frame']:>9.1f} "
            f"{r['peak_rss_mb']:>7.0f} {r['import_s']:>9.2f} {r['first_prediction_s']:>8.2f}"
        )
    print(f"{'ceiling':<10} {ceiling['fps']:>7.1f}   ({ceiling['configuration']})")
    print(f"ratio_fps={report['ratio_fps']:.3f} ratio_ceiling={report['ratio_ceiling']:.3f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
