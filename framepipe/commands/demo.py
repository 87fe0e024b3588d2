"""``framepipe demo``: the bundled detector on a generated clip, scored against its ground truth."""

from __future__ import annotations

import argparse
from typing import Any


def add_command(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="run the bundled detector on a generated clip and score it",
        description="Make a clip of moving shapes (unless --video is given), run the bundled framepipe-shapes/1 "
        "detector over it, write annotated.mp4 and predictions.jsonl, and print fps, latency, precision and recall.",
    )
    demo.add_argument("--video", help="run on this video instead of a generated clip (ground truth: same name .jsonl)")
    demo.add_argument("--seconds", type=float, default=10.0, help="length of the generated clip (default 10)")
    demo.add_argument("--out", help="output folder (default: a new framepipe-demo-<time> folder here)")
    demo.add_argument("--seed", type=int, default=2024, help="seed of the generated clip")
    demo.add_argument("--model", default="framepipe-shapes/1", help="model id (default framepipe-shapes/1)")
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
    )
    if report.clip_seconds is not None:
        print(f"clip={report.video} (made in {report.clip_seconds:.1f} s)")
    for line in report.summary_lines():
        print(line)
    return 0
