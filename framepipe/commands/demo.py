"""``framepipe demo``: a bundled model (detector, segmentation, classifier, keypoints) on a generated clip,
scored against its ground truth."""

from __future__ import annotations

import argparse
from typing import Any


def add_command(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="run a bundled model on a generated clip and score it",
        description="Make a clip of moving shapes (unless --video is given), run a bundled model over it (by --task: "
        "detect framepipe-shapes/1, segment framepipe-shapes-seg/1, classify framepipe-shapes-cls/1, pose "
        "framepipe-shapes-pose/1), write annotated.mp4 and predictions.jsonl, and print fps, latency and the "
        "task's quality: box precision and recall (detect, segment, pose), mean mask IoU (segment), PCK@0.1 "
        "(pose), top-1 accuracy (classify).",
    )
    demo.add_argument(
        "--task",
        choices=("detect", "segment", "classify", "pose"),
        default="detect",
        help="which bundled model and clip (default detect)",
    )
    demo.add_argument("--video", help="run on this video instead of a generated clip (ground truth: same name .jsonl)")
    demo.add_argument("--seconds", type=float, default=10.0, help="length of the generated clip (default 10)")
    demo.add_argument("--out", help="output folder (default: a new framepipe-demo-<time> folder here)")
    demo.add_argument("--seed", type=int, default=2024, help="seed of the generated clip")
    demo.add_argument("--model", default=None, help="model id (default: the task's bundled model)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from framepipe.demo.run import run_demo

    report = run_demo(
        video=args.video,
        seconds=args.seconds,
        out=args.out,
        seed=args.seed,
        model_id=args.model,
        progress=not args.no_progress,
        task=args.task,
    )
    if report.clip_seconds is not None:
        print(f"clip={report.video} (made in {report.clip_seconds:.1f} s)")
    for line in report.summary_lines():
        print(line)
    return 0
