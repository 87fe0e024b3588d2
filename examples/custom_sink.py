"""A custom on_prediction: print what each frame holds (Roboflow's "custom sink" example).

python examples/custom_sink.py [VIDEO]
"""

from __future__ import annotations

import sys
import tempfile
from typing import Any

from framepipe import InferencePipeline, VideoFrame
from framepipe.demo import make_clip


def my_custom_sink(predictions: dict[str, Any], video_frame: VideoFrame) -> None:
    labels = [p["class"] for p in predictions["predictions"]]
    print(f"frame {video_frame.frame_id} at {video_frame.frame_timestamp:%H:%M:%S.%f}: {len(labels)} objects {labels}")


def main() -> None:
    video = sys.argv[1] if len(sys.argv) > 1 else make_clip(f"{tempfile.mkdtemp()}/shapes.mp4", seconds=3).video_path
    pipeline = InferencePipeline.init(
        model_id="framepipe-shapes/1",
        video_reference=video,
        on_prediction=my_custom_sink,
    )
    pipeline.start()
    pipeline.join()


if __name__ == "__main__":
    main()
