"""A custom sink: count the objects of each class in every frame with supervision.

    python examples/count_objects.py [VIDEO]

Prints one line per second of video and, at the end, the average count of each class per frame.
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from typing import Any

import supervision as sv

from framepipe import InferencePipeline, VideoFrame
from framepipe.demo import make_clip

totals: Counter[str] = Counter()
frames = 0


def on_prediction(predictions: dict[str, Any], video_frame: VideoFrame) -> None:
    global frames
    detections = sv.Detections.from_inference(predictions)
    counts = Counter(str(name) for name in detections.data.get("class_name", []))
    totals.update(counts)
    frames += 1
    if video_frame.fps and video_frame.frame_id % round(video_frame.fps) == 0:
        seconds = (video_frame.presentation_time or 0.0) + 1 / video_frame.fps
        print(f"t={seconds:5.1f}s  " + "  ".join(f"{name}={n}" for name, n in sorted(counts.items())))


def main() -> None:
    video = sys.argv[1] if len(sys.argv) > 1 else make_clip(f"{tempfile.mkdtemp()}/shapes.mp4", seconds=5).video_path
    pipeline = InferencePipeline.init(video_reference=video, model_id="framepipe-shapes/1", on_prediction=on_prediction)
    pipeline.start()
    pipeline.join()
    print(f"frames={frames}")
    for name, total in sorted(totals.items()):
        print(f"average {name} per frame: {total / max(frames, 1):.2f}")


if __name__ == "__main__":
    main()
