"""The ``framepipe`` command.

Example::

    framepipe demo --seconds 10 --out demo-out
    framepipe run framepipe-shapes/1 clip.mp4 --sink jsonl:predictions.jsonl
    framepipe serve --port 9001
"""

from __future__ import annotations

import argparse
import logging
import sys

from framepipe import __version__
from framepipe.commands import demo as demo_command
from framepipe.commands import run as run_command
from framepipe.commands import serve as serve_command
from framepipe.commands.artifacts import add_commands as add_artifact_commands
from framepipe.errors import FramepipeError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="framepipe", description="Real-time video inference with ONNX Runtime.")
    parser.add_argument("--version", action="version", version=f"framepipe {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True)
    demo_command.add_command(commands)
    run_command.add_command(commands)
    serve_command.add_command(commands)
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
