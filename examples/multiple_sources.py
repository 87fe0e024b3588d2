"""Several sources in one pipeline: on_prediction gets lists ordered by source id, with None
where a source had no frame in that batch (Roboflow's multi-source example).

    python examples/multiple_sources.py [VIDEO ...]
"""

from __future__ import annotations

import sys
import tempfile
from functools import partial
from typing import Any

import numpy as np

from framepipe import InferencePipeline, VideoFrame
from framepipe.demo import make_clip
from framepipe.sinks import render_boxes

tiles_seen: list[tuple[int, int]] = []


def keep_tiles(images: list[tuple[int, np.ndarray]]) -> None:
    """Where a display exists, render_boxes' default shows the tiles in a window instead."""
    tiles_seen.append((len(images), images[0][1].shape[1]))


def count_per_source(predictions: list[dict[str, Any] | None], video_frames: list[VideoFrame | None]) -> None:
    for prediction, frame in zip(predictions, video_frames, strict=True):
        if frame is not None and prediction is not None and frame.frame_id % 30 == 0:
            print(f"source {frame.source_id} frame {frame.frame_id}: {len(prediction['predictions'])} objects")


def main() -> None:
    videos = sys.argv[1:] or [
        make_clip(f"{tempfile.mkdtemp()}/cam{i}.mp4", seconds=2, seed=i).video_path for i in range(2)
    ]
    render = partial(render_boxes, on_frame_rendered=keep_tiles)

    def on_prediction(predictions: list[Any], video_frames: list[Any]) -> None:
        count_per_source(predictions, video_frames)
        render(predictions, video_frames)

    pipeline = InferencePipeline.init(
        model_id="framepipe-shapes/1",
        video_reference=videos,
        on_prediction=on_prediction,
    )
    pipeline.start()
    pipeline.join()
    print(f"batches={len(tiles_seen)} sources={len(videos)}")


if __name__ == "__main__":
    main()
