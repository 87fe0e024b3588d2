"""Post-processing cost at 0, 1,000 and 3,000 candidates: NMS and the YOLOv8 decode, framepipe's
against the greedy numpy loop and the argmax-over-every-anchor decode it replaced, in one run.

    python benchmarks/postprocess.py [--repeats 30] [--json out.json]

Candidates are boxes as a detector gives them (many boxes around few objects, 80 classes, the
YOLOv8n-640 layout ``[84, 8400]``). Times are medians of ``--repeats`` calls, in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from framepipe.models.heads import DecodeSettings, get_head
from framepipe.models.nms import non_max_suppression


def greedy_numpy_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, class_ids: np.ndarray) -> np.ndarray:
    """The NMS framepipe had before: a greedy numpy loop over boxes shifted apart per class."""
    work = boxes.astype(np.float32, copy=True)
    span = float(work.max() - min(float(work.min()), 0.0)) + 1.0
    work += (class_ids.astype(np.float32) * span)[:, None]
    x1, y1, x2, y2 = work.T
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        w = np.maximum(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0)
        h = np.maximum(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0)
        inter = w * h
        union = areas[best] + areas[rest] - inter
        order = rest[np.divide(inter, union, out=np.zeros_like(inter), where=union > 0) <= iou_threshold]
    return np.asarray(keep, np.int64)


def argmax_first_decode(pred: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The YOLOv8 decode framepipe had before: the class argmax over every anchor, then the filter."""
    class_scores = pred[4:].T
    class_ids = class_scores.argmax(axis=-1)
    scores = np.take_along_axis(class_scores, class_ids[..., None], axis=-1)[..., 0]
    keep = np.flatnonzero(scores >= confidence)
    cx, cy, w, h = pred[0, keep], pred[1, keep], pred[2, keep], pred[3, keep]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1), scores[keep], class_ids[keep]


def raw_output(rng: np.random.Generator, candidates: int, anchors: int = 8400, classes: int = 80) -> np.ndarray:
    """A ``[4 + classes, anchors]`` output with ``candidates`` anchors above 0.25 around 40 objects."""
    pred = np.zeros((4 + classes, anchors), np.float32)
    pred[4:] = rng.uniform(0, 0.2, (classes, anchors)).astype(np.float32)
    objects = rng.uniform(40, 600, (40, 2)), rng.uniform(20, 160, (40, 2)), rng.integers(0, classes, 40)
    chosen = rng.choice(anchors, candidates, replace=False)
    which = rng.integers(0, 40, candidates)
    pred[0, chosen] = objects[0][which, 0] + rng.normal(0, 5, candidates)
    pred[1, chosen] = objects[0][which, 1] + rng.normal(0, 5, candidates)
    pred[2, chosen] = objects[1][which, 0] * rng.uniform(0.85, 1.15, candidates)
    pred[3, chosen] = objects[1][which, 1] * rng.uniform(0.85, 1.15, candidates)
    pred[4 + objects[2][which], chosen] = rng.uniform(0.3, 1.0, candidates)
    return pred


def median_ms(call: Callable[[], Any], repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


def measure(repeats: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    head = get_head("yolov8")
    settings = DecodeSettings(0.25, (640, 640))
    report: dict[str, Any] = {}
    for candidates in (0, 1000, 3000):
        pred = raw_output(rng, candidates)
        found = head.decode([pred], settings)
        assert len(found.scores) == candidates
        _, old_scores, _ = argmax_first_decode(pred, 0.25)
        assert np.array_equal(np.sort(old_scores), np.sort(found.scores))
        row = {
            "decode_ms": median_ms(partial(head.decode, [pred], settings), repeats),
            "decode_before_ms": median_ms(partial(argmax_first_decode, pred, 0.25), repeats),
        }
        if candidates:
            boxes, scores, ids = found.boxes, found.scores, found.class_ids
            ours = non_max_suppression(boxes, scores, 0.7, ids)
            assert sorted(ours.tolist()) == sorted(greedy_numpy_nms(boxes, scores, 0.7, ids).tolist())
            row["nms_ms"] = median_ms(partial(non_max_suppression, boxes, scores, 0.7, ids), repeats)
            row["nms_before_ms"] = median_ms(partial(greedy_numpy_nms, boxes, scores, 0.7, ids), repeats)
            row["kept"] = len(ours)
        report[str(candidates)] = row
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    report = measure(args.repeats)
    print(f"{'candidates':>10} {'decode ms':>10} {'before':>8} {'NMS ms':>8} {'before':>8} {'kept':>5}")
    for candidates, row in report.items():
        print(
            f"{candidates:>10} {row['decode_ms']:>10.3f} {row['decode_before_ms']:>8.3f} "
            f"{row.get('nms_ms', 0.0):>8.3f} {row.get('nms_before_ms', 0.0):>8.3f} {row.get('kept', 0):>5}"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
