"""Quickstart: run the bundled shapes detector over a video and draw its boxes.

    python examples/quickstart.py [VIDEO]

Without VIDEO a 5-second clip of moving shapes is generated first. With a display, a window shows
the annotated frames; headless, render_boxes says so once and the pipeline runs to the end.
"""

from __future__ import annotations

import sys
import tempfile

from framepipe import InferencePipeline
from framepipe.demo import make_clip
from framepipe.sinks import render_boxes


def main() -> None:
    video = sys.argv[1] if len(sys.argv) > 1 else make_clip(f"{tempfile.mkdtemp()}/shapes.mp4", seconds=5).video_path
    pipeline = InferencePipeline.init(
        model_id="framepipe-shapes/1",
        video_reference=video,
        on_prediction=render_boxes,
    )
    pipeline.start()
    pipeline.join()
    print(f"processed {pipeline.frames_dispatched} frames of {video}")


if __name__ == "__main__":
    main()
