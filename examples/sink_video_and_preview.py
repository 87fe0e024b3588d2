"""Several sinks at once: an annotated video file, JSON lines, and a live preview in the browser,
with tracking (Roboflow's VideoFileSink example, plus framepipe's preview and tracker).

    python examples/sink_video_and_preview.py VIDEO OUT_DIR

While it runs, http://127.0.0.1:8080/ shows the annotated frames.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

from trackers import ByteTrackTracker

from framepipe import InferencePipeline
from framepipe.sinks import JsonlSink, MJPEGPreviewSink, VideoFileSink, multi_sink


def main() -> None:
    video, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    video_sink = VideoFileSink.init(video_file_name=str(out / "annotated.mp4"))
    jsonl = JsonlSink(out / "predictions.jsonl")
    preview = MJPEGPreviewSink(port=int(sys.argv[3]) if len(sys.argv) > 3 else 8080)
    pipeline = InferencePipeline.init(
        model_id="framepipe-shapes/1",
        video_reference=video,
        on_prediction=partial(multi_sink, sinks=[video_sink.on_prediction, jsonl.on_prediction, preview.on_prediction]),
        tracker=lambda: ByteTrackTracker(track_activation_threshold=0.5),
    )
    pipeline.start()
    pipeline.join()
    for sink in (video_sink, jsonl, preview):
        sink.release()
    print(f"wrote {video_sink.frames_written} frames to {out / 'annotated.mp4'} and {out / 'predictions.jsonl'}")


if __name__ == "__main__":
    main()
