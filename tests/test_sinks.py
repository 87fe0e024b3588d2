"""render_boxes, the H.264 writer and the JSON-lines sink, alone and in a pipeline."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from functools import partial
from typing import Any

import numpy as np
import pytest
import supervision as sv

from framepipe import InferencePipeline, VideoFrame
from framepipe.sinks import H264Writer, JsonlSink, create_tiles, render_boxes
from framepipe.sinks import render as render_module
from tests.helpers import probe_video

PREDICTION = {
    "image": {"width": 320, "height": 240},
    "predictions": [
        {
            "x": 100.0,
            "y": 80.0,
            "width": 60.0,
            "height": 40.0,
            "confidence": 0.9,
            "class": "star",
            "class_id": 3,
            "detection_id": "a",
        },
    ],
}


def _frame(source_id: int | None = 0, frame_id: int = 1) -> VideoFrame:
    return VideoFrame(np.full((240, 320, 3), 90, np.uint8), frame_id, datetime.now(), 30.0, 30.0, source_id, True)


def test_render_boxes_draws_and_hands_over_the_frame() -> None:
    rendered: list[Any] = []
    frame = _frame(source_id=2)
    render_boxes(PREDICTION, frame, display_size=None, on_frame_rendered=rendered.append)
    assert len(rendered) == 1
    source_id, image = rendered[0]
    assert source_id == 2 and image.shape == frame.image.shape
    changed = np.any(image != frame.image, axis=2)
    # the box edges (x 70..130, y 60..100) were drawn, the far corner was not
    assert changed[60, 70:130].any() and changed[60:100, 70].any()
    assert not changed[200:, 250:].any()
    assert (frame.image == 90).all()  # the frame itself is untouched


def test_render_boxes_letterboxes_to_display_size_and_draws_statistics() -> None:
    rendered: list[Any] = []
    render_boxes(
        PREDICTION,
        _frame(),
        display_size=(640, 360),
        display_statistics=True,
        fps_monitor=sv.FPSMonitor(),
        on_frame_rendered=rendered.append,
    )
    _, image = rendered[0]
    assert image.shape == (360, 640, 3)
    assert (image[:280, :80] == 0).all()  # black side bars of the letterbox (text is drawn below)
    assert (image[330:355, 90:300, 1] > 200).any()  # green statistics text near the bottom


def test_render_boxes_with_lists_renders_every_source() -> None:
    rendered: list[Any] = []
    render_boxes([PREDICTION, None], [_frame(0), None], display_size=None, on_frame_rendered=rendered.append)
    assert len(rendered[0]) == 2
    assert rendered[0][0][1].shape == (240, 320, 3) and rendered[0][1][1].shape == (256, 256, 3)
    tiles = create_tiles([item[1] for item in rendered[0]])
    assert tiles.shape[0] > 240 and tiles.shape[1] > 2 * 256


def test_headless_display_warns_once_and_goes_on(monkeypatch, caplog) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(render_module._Window, "warned", False)
    caplog.set_level(logging.WARNING, logger="framepipe.sinks")
    for frame_id in range(3):
        render_boxes(PREDICTION, _frame(frame_id=frame_id + 1))  # default: show a window
    warnings = [r for r in caplog.records if "no display available" in r.getMessage()]
    assert len(warnings) == 1


def test_h264_writer_pads_odd_sizes_and_counts(tmp_path) -> None:
    path = tmp_path / "odd.mp4"
    with H264Writer(path, fps=24) as writer:
        for i in range(12):
            writer.write(np.full((101, 161, 3), i * 20, np.uint8))
        assert writer.frames_written == 12
    assert probe_video(path) == ("h264", 12, 162, 102)
    with pytest.raises(RuntimeError, match="closed"):
        writer.write(np.zeros((101, 161, 3), np.uint8))
    with pytest.raises(ValueError, match="BGR uint8"):
        H264Writer(tmp_path / "x.mp4").write(np.zeros((10, 10), np.uint8))


def test_jsonl_sink_in_a_pipeline_round_trips_to_supervision(clip, tmp_path) -> None:
    path = tmp_path / "predictions.jsonl"
    with JsonlSink(path, flush_interval=0.0) as sink:
        pipeline = InferencePipeline.init(clip.video_path, "framepipe-shapes/1", sink.on_prediction)
        pipeline.start()
        pipeline.join()
    lines = path.read_text().splitlines()
    assert len(lines) == clip.frames
    records = [json.loads(line) for line in lines]
    assert [r["frame_id"] for r in records] == list(range(1, clip.frames + 1))
    detections = sv.Detections.from_inference(records[0]["predictions"])
    assert len(detections) == len(records[0]["predictions"]["predictions"]) > 0


def test_annotated_video_differs_from_source_where_boxes_are(clip, tmp_path) -> None:
    path = tmp_path / "annotated.mp4"
    with H264Writer(path, fps=clip.fps) as writer:
        pipeline = InferencePipeline.init(
            clip.video_path,
            "framepipe-shapes/1",
            partial(render_boxes, display_size=None, on_frame_rendered=lambda item: writer.write(item[1])),
        )
        pipeline.start()
        pipeline.join()
    assert probe_video(path) == ("h264", clip.frames, clip.width, clip.height)
