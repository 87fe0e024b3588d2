"""Per-frame cost of each sink on the frames of a video and the bundled model's predictions.

    python benchmarks/sinks.py --video clip.mp4 [--frames 150] [--json out.json] [--png annotated.png]

Each sink is called on the same frames and predictions (decoded and inferred beforehand, so only
the sink is timed): render_boxes (drawing only), VideoFileSink (drawing and H.264), JsonlSink,
UDPSink (to a local socket), MJPEGPreviewSink with one client, and tracking (ByteTrack).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2

from framepipe.models import get_model
from framepipe.sinks import JsonlSink, MJPEGPreviewSink, UDPSink, VideoFileSink, render_boxes
from framepipe.sources import SourceOptions, VideoSource


def frames_and_predictions(video: str, count: int) -> list[tuple[Any, Any]]:
    model = get_model("framepipe-shapes/1")
    source = VideoSource(video, options=SourceOptions())
    source.start()
    pairs: list[tuple[Any, Any]] = []
    while len(pairs) < count and (frame := source.read_frame(timeout=10)) is not None:
        pairs.append((model.infer(frame.image), frame))
    source.terminate()
    return pairs


def timed(name: str, sink: Callable[[Any, Any], Any], pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    for prediction, frame in pairs[:3]:
        sink(prediction, frame)
    times = []
    for prediction, frame in pairs:
        started = time.perf_counter()
        sink(prediction, frame)
        times.append((time.perf_counter() - started) * 1000)
    return {"sink": name, "median_ms": statistics.median(times), "p95_ms": sorted(times)[int(0.95 * (len(times) - 1))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", required=True)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--png", help="save one annotated frame as PNG")
    args = parser.parse_args()
    pairs = frames_and_predictions(args.video, args.frames)
    folder = Path(tempfile.mkdtemp())
    results = []
    results.append(
        timed(
            "render_boxes", lambda p, f: render_boxes(p, f, display_size=None, on_frame_rendered=lambda _: None), pairs
        )
    )
    video = VideoFileSink.init(str(folder / "out.mp4"))
    results.append(timed("VideoFileSink", video.on_prediction, pairs))
    video.release()
    jsonl = JsonlSink(folder / "out.jsonl")
    results.append(timed("JsonlSink", jsonl.on_prediction, pairs))
    jsonl.release()
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    udp = UDPSink.init("127.0.0.1", receiver.getsockname()[1])
    results.append(timed("UDPSink", udp.send_predictions, pairs))
    udp.release()
    receiver.close()
    preview = MJPEGPreviewSink(port=0)
    stop = threading.Event()

    def watch() -> None:
        with urllib.request.urlopen(f"{preview.url}stream.mjpg", timeout=30) as stream:
            while not stop.is_set() and stream.read1(65536):
                pass

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    while preview.clients == 0:
        time.sleep(0.01)
    results.append(timed("MJPEGPreviewSink (1 client)", preview.on_prediction, pairs))
    stop.set()
    preview.release()
    try:
        from trackers import ByteTrackTracker

        from framepipe.pipeline.tracking import SourceTrackers

        tracking = SourceTrackers(lambda: ByteTrackTracker(frame_rate=30, track_activation_threshold=0.5))
        results.append(timed("tracking (ByteTrack)", tracking.apply, pairs))
    except ImportError:
        pass
    if args.png:
        rendered: list[Any] = []
        prediction, frame = pairs[len(pairs) // 2]
        render_boxes(prediction, frame, display_size=None, on_frame_rendered=rendered.append)
        cv2.imwrite(args.png, rendered[0][1])
    height, width = pairs[0][1].image.shape[:2]
    print(f"{len(pairs)} frames of {width}x{height}")
    print(f"{'sink':<30} {'median ms':>10} {'p95 ms':>8}")
    for row in results:
        print(f"{row['sink']:<30} {row['median_ms']:>10.2f} {row['p95_ms']:>8.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"frames": len(pairs), "frame_size": [width, height], "sinks": results}, f, indent=2)


if __name__ == "__main__":
    main()
