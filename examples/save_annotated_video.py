"""Write an annotated, browser-playable H.264 video and a JSON-lines file of predictions.

python examples/save_annotated_video.py VIDEO OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from framepipe import InferencePipeline, VideoFrame
from framepipe.sinks import H264Writer, JsonlSink, render_boxes


def main() -> None:
    video, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    with H264Writer(out / "annotated.mp4", fps=30) as writer, JsonlSink(out / "predictions.jsonl") as jsonl:

        def on_prediction(predictions: dict[str, Any], video_frame: VideoFrame) -> None:
            render_boxes(
                predictions, video_frame, display_size=None, on_frame_rendered=lambda item: writer.write(item[1])
            )
            jsonl.on_prediction(predictions, video_frame)

        pipeline = InferencePipeline.init(
            video_reference=video, model_id="framepipe-shapes/1", on_prediction=on_prediction
        )
        pipeline.start()
        pipeline.join()
    print(f"wrote {writer.frames_written} frames to {out / 'annotated.mp4'} and {out / 'predictions.jsonl'}")


if __name__ == "__main__":
    main()
