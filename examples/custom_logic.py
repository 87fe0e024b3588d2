"""Your own inference with init_with_custom_logic: on_video_frame gets a list of VideoFrames and
returns one result per frame, in order (Roboflow's custom-logic example). Here: the mean colour
of each frame and the brightest of the detected shapes, with a model loaded by get_model.

    python examples/custom_logic.py [VIDEO]
"""

from __future__ import annotations

import sys
import tempfile
from typing import Any

from framepipe import InferencePipeline, VideoFrame, get_model
from framepipe.demo import make_clip

model = get_model("framepipe-shapes/1")


def on_video_frame(video_frames: list[VideoFrame]) -> list[dict[str, Any]]:
    detections = model.infer([f.image for f in video_frames], confidence=0.5)
    results = []
    for frame, found in zip(video_frames, detections, strict=True):
        results.append(
            {
                "mean_bgr": [round(float(v), 1) for v in frame.image.reshape(-1, 3).mean(axis=0)],
                "objects": len(found["predictions"]),
            }
        )
    return results


def on_prediction(result: dict[str, Any], video_frame: VideoFrame) -> None:
    if video_frame.frame_id % 30 == 1:
        print(f"frame {video_frame.frame_id}: {result['objects']} objects, mean colour {result['mean_bgr']}")


def main() -> None:
    video = sys.argv[1] if len(sys.argv) > 1 else make_clip(f"{tempfile.mkdtemp()}/shapes.mp4", seconds=3).video_path
    pipeline = InferencePipeline.init_with_custom_logic(
        video_reference=video,
        on_video_frame=on_video_frame,
        on_prediction=on_prediction,
        on_pipeline_start=lambda: print("pipeline started"),
        on_pipeline_end=lambda: print("pipeline ended"),
    )
    pipeline.start()
    pipeline.join()


if __name__ == "__main__":
    main()
