"""The ``framepipe`` command.

Example::

    framepipe demo --seconds 10 --out demo-out
"""

from __future__ import annotations

import argparse
import logging
import sys

from framepipe import __version__
from framepipe.artifacts.commands import add_commands as add_artifact_commands
from framepipe.errors import FramepipeError


def _demo(args: argparse.Namespace) -> int:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="framepipe", description="Real-time video inference with ONNX Runtime.")
    parser.add_argument("--version", action="version", version=f"framepipe {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True)
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
    demo.set_defaults(handler=_demo)
    add_artifact_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args))
    except FramepipeError as error:
        print(f"framepipe: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
