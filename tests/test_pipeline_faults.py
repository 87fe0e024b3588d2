"""Faults of issue 13, each reproduced as a user meets it: real H.264 clips, real decoders, real
sockets on 127.0.0.1. Each test failed before its fix (see notes/issue-13.md)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import threading
import time
import weakref
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from framepipe import InferencePipeline, VideoFrame
from framepipe.demo.clip import make_clip
from framepipe.errors import FramepipeError, PipelineStateError
from framepipe.pipeline import PipelineSinkError
from framepipe.sinks import JsonlSink, VideoFileSink, multi_sink
from framepipe.sources import SourceOptions, StatusUpdate, VideoSource
from framepipe.sources.entities import StreamState
from tests.helpers import framepipe_threads, wait_for
from tests.servers import silent_server


def _empty(frames: list[VideoFrame]) -> list[dict[str, Any]]:
    """An ``on_video_frame`` that costs nothing: these tests are about the pipeline's machinery."""
    return [{"image": {"width": f.image.shape[1], "height": f.image.shape[0]}, "predictions": []} for f in frames]


@pytest.fixture(scope="module")
def two_clips(tmp_path_factory) -> list[Any]:
    folder = tmp_path_factory.mktemp("two")
    return [make_clip(folder / f"c{i}.mp4", seconds=2.0, size=(320, 192), seed=60 + i) for i in range(2)]


# 1 -------------------------------------------------------------------------------------------------
def test_multi_sink_children_are_released_when_the_pipeline_ends(clip, tmp_path: Path) -> None:
    """The documented ``partial(multi_sink, sinks=[...])``: a JsonlSink inside must be finished."""
    path = tmp_path / "out.jsonl"
    jsonl = JsonlSink(path, flush_interval=3600)  # nothing reaches the disk before release()
    pipeline = InferencePipeline.init_with_custom_logic(clip.video_path, _empty, partial(multi_sink, sinks=[jsonl]))
    pipeline.start()
    pipeline.join()
    assert len(path.read_text().splitlines()) == clip.frames


# 2 -------------------------------------------------------------------------------------------------
def test_resume_while_pause_handlers_run_does_not_freeze_the_source(two_clips) -> None:
    in_pause_handler = threading.Event()

    def slow_on_paused(update: StatusUpdate) -> None:
        if update.event_type == "SOURCE_STATE_UPDATE" and update.payload.get("new_state") is StreamState.PAUSED:
            in_pause_handler.set()
            time.sleep(0.05)  # a status handler that takes its time (the fault's trigger)

    seen = {0: 0, 1: 0}
    lock = threading.Lock()

    def on_prediction(predictions: list[Any], frames: list[VideoFrame | None]) -> None:
        with lock:
            for frame in frames:
                if frame is not None:
                    seen[frame.source_id or 0] += 1

    pipeline = InferencePipeline.init_with_custom_logic(
        [c.video_path for c in two_clips], _empty, on_prediction, status_update_handlers=[slow_on_paused]
    )
    pipeline.start(use_main_thread=False)
    try:
        assert wait_for(lambda: seen[0] >= 5, timeout=30)
        pausing = threading.Thread(target=pipeline.pause_stream, args=(0,))
        pausing.start()
        assert in_pause_handler.wait(10)
        pipeline.resume_stream(0)  # while pause()'s status handlers still run
        pausing.join(10)
        pipeline.join(timeout=60)
        assert not pipeline.is_running(), "the pipeline hung after pause/resume"
        assert seen == {0: two_clips[0].frames, 1: two_clips[1].frames}
    finally:
        pipeline.terminate()
        pipeline.join(timeout=10)


# 3 -------------------------------------------------------------------------------------------------
def test_max_fps_drops_on_live_sources_are_counted(clip) -> None:
    pipeline = InferencePipeline.init_with_custom_logic(clip.video_path, _empty, max_fps=5, realtime=True)
    pipeline.start()
    pipeline.join()
    counters = pipeline.metrics().sources[0]
    assert counters.captured == clip.frames
    assert counters.processed < clip.frames / 2  # max_fps did throttle
    assert counters.captured == counters.processed + counters.dropped, counters


# 4 -------------------------------------------------------------------------------------------------
def _duration(path: Path) -> float:
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        pytest.fail("ffprobe is missing: install ffmpeg (bash scripts/test.sh does)")
    done = subprocess.run(
        [ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return float(json.loads(done.stdout)["format"]["duration"])


def test_a_looping_file_written_by_video_file_sink_keeps_its_timing(clip, tmp_path: Path) -> None:
    path = tmp_path / "loop.mp4"
    sink = VideoFileSink.init(path)
    wanted = clip.frames * 2 + clip.frames // 2  # two and a half loops

    def on_prediction(prediction: Any, frame: VideoFrame) -> None:
        if sink.frames_written < wanted:
            sink.on_prediction(prediction, frame)
        if sink.frames_written >= wanted:
            pipeline.terminate()

    pipeline = InferencePipeline.init_with_custom_logic(
        clip.video_path, _empty, on_prediction, source_options=SourceOptions(loop=True)
    )
    pipeline.start()
    pipeline.join()
    sink.release()
    assert sink.frames_written == wanted
    assert _duration(path) == pytest.approx(wanted / clip.fps, rel=0.05)


# 5 -------------------------------------------------------------------------------------------------
def test_a_file_next_to_a_dead_camera_loses_no_results(clip) -> None:
    delivered: list[int] = []

    def slow_sink(predictions: list[Any], frames: list[VideoFrame | None]) -> None:
        time.sleep(0.01)  # a sink slower than inference
        delivered.extend(f.frame_id for f in frames if f is not None and f.source_id == 0)

    options = SourceOptions(
        open_timeout=0.5,
        read_timeout=0.5,
        max_reconnect_attempts=3,
        reconnect_first_delay=0.05,
        reconnect_max_delay=0.1,
    )
    with silent_server() as port:
        pipeline = InferencePipeline.init_with_custom_logic(
            [clip.video_path, f"rtsp://127.0.0.1:{port}/live"],
            _empty,
            slow_sink,
            predictions_queue_size=4,
            source_options=options,
        )
        pipeline.start(use_main_thread=False)
        try:
            pipeline.join(timeout=60)
            assert not pipeline.is_running(), "the pipeline did not end after its file ended and its camera gave up"
        finally:
            pipeline.terminate()
            pipeline.join(timeout=10)
    assert delivered == list(range(1, clip.frames + 1))
    assert pipeline.metrics().sources[0].dropped_by_sink_queue == 0


# 6 -------------------------------------------------------------------------------------------------
def test_start_opens_unanswering_cameras_in_parallel_and_says_timed_out() -> None:
    updates: list[StatusUpdate] = []
    options = SourceOptions(open_timeout=1.5, read_timeout=1.5, reconnect_first_delay=0.05, reconnect_max_delay=0.1)
    with silent_server() as a, silent_server() as b, silent_server() as c:
        pipeline = InferencePipeline.init_with_custom_logic(
            [f"rtsp://127.0.0.1:{port}/live" for port in (a, b, c)],
            _empty,
            status_update_handlers=[updates.append],
            source_options=options,
        )
        began = time.monotonic()
        pipeline.start(use_main_thread=False)
        took = time.monotonic() - began
        try:
            assert wait_for(lambda: any(u.event_type == "RECONNECTING" for u in list(updates)), timeout=20)
        finally:
            pipeline.terminate()
            pipeline.join(timeout=15)
    assert took < 2 * options.open_timeout, f"start() took {took:.1f} s for three cameras"
    reasons = [str(u.payload.get("reason")) for u in updates if u.event_type == "RECONNECTING"]
    assert reasons and all("timed out" in r and "Invalid data" not in r for r in reasons), reasons


# 7 -------------------------------------------------------------------------------------------------
def test_join_before_start_is_refused_and_leaves_the_pipeline_usable(clip, tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    ended: list[bool] = []
    sink = JsonlSink(path)
    pipeline = InferencePipeline.init_with_custom_logic(
        clip.video_path, _empty, sink, on_pipeline_end=lambda: ended.append(True)
    )
    with pytest.raises(PipelineStateError, match=r"join\(\) before start\(\)"):
        pipeline.join()
    assert not ended
    pipeline.start()
    pipeline.join()
    assert pipeline.dispatch_errors == 0 and ended == [True]
    assert len(path.read_text().splitlines()) == clip.frames


# 9 -------------------------------------------------------------------------------------------------
def test_credentials_never_reach_logs_or_status_updates(caplog) -> None:
    updates: list[StatusUpdate] = []
    options = SourceOptions(open_timeout=0.5, read_timeout=0.5, max_reconnect_attempts=1, reconnect_first_delay=0.05)
    with silent_server() as port, caplog.at_level(logging.DEBUG, logger="framepipe"):
        pipeline = InferencePipeline.init_with_custom_logic(
            [f"rtsp://user:p@ss/w0rd@127.0.0.1:{port}/live?token=SECRET"],
            _empty,
            status_update_handlers=[updates.append],
            source_options=options,
        )
        pipeline.start()
        pipeline.join(timeout=30)
        shown = repr(pipeline)
    text = "\n".join(r.getMessage() for r in caplog.records) + "\n".join(str(u.payload) for u in updates) + shown
    assert "127.0.0.1" in text  # the source is named...
    for secret in ("p@ss", "w0rd", "SECRET", "user:"):  # ...without its credentials
        assert secret not in text, secret


# 10 ------------------------------------------------------------------------------------------------
def test_a_raising_sink_logs_one_traceback_then_counts(clip, caplog) -> None:
    def broken(prediction: Any, frame: VideoFrame) -> None:
        raise ValueError("disk full")

    with caplog.at_level(logging.WARNING, logger="framepipe"):
        pipeline = InferencePipeline.init_with_custom_logic(clip.video_path, _empty, broken)
        pipeline.start()
        pipeline.join()
    assert pipeline.dispatch_errors == clip.frames
    with_traceback = [r for r in caplog.records if r.exc_info]
    assert len(with_traceback) == 1, len(with_traceback)
    assert any(f"{clip.frames} times" in r.getMessage() for r in caplog.records)


# 11 ------------------------------------------------------------------------------------------------
def test_queued_frames_are_bounded_by_bytes(clip) -> None:
    images: list[weakref.ref[Any]] = []
    frame_bytes = clip.width * clip.height * 3

    def remember(frames: list[VideoFrame]) -> list[dict[str, Any]]:
        images.extend(weakref.ref(f.image) for f in frames)
        return _empty(frames)

    stalled = threading.Event()
    go_on = threading.Event()

    def stalled_sink(predictions: Any, frames: Any) -> None:
        stalled.set()
        go_on.wait(30)

    sources = 4
    pipeline = InferencePipeline.init_with_custom_logic(
        [clip.video_path] * sources,
        remember,
        stalled_sink,
        realtime=True,
        predictions_queue_size=16,
        max_queued_bytes=4 * frame_bytes,
    )
    pipeline.start(use_main_thread=False)
    try:
        assert stalled.wait(30)
        assert wait_for(lambda: pipeline.frames_inferred >= 100, timeout=30)
        alive = sum(ref() is not None for ref in images)
        # the bound, plus what is outside the sink queue: 2 buffered frames per source, the batch being
        # inferred and the one the sink holds
        assert alive * frame_bytes <= 4 * frame_bytes + (2 * sources + 2 * sources) * frame_bytes, alive
    finally:
        go_on.set()
        pipeline.terminate()
        pipeline.join(timeout=15)


def test_a_slow_sink_does_not_hold_the_others(clip) -> None:
    go_on = threading.Event()
    fast: list[int] = []

    def stalled(prediction: Any, frame: VideoFrame) -> None:
        go_on.wait(30)

    def counting(prediction: Any, frame: VideoFrame) -> None:
        fast.append(frame.frame_id)

    pipeline = InferencePipeline.init_with_custom_logic(
        clip.video_path, _empty, partial(multi_sink, sinks=[stalled, counting]), realtime=True
    )
    pipeline.start(use_main_thread=False)
    try:
        assert wait_for(lambda: len(fast) >= 30, timeout=30), f"the fast sink got {len(fast)} frames"
    finally:
        go_on.set()
        pipeline.terminate()
        pipeline.join(timeout=15)


# 12 ------------------------------------------------------------------------------------------------
def test_source_properties_follow_a_resolution_change(tmp_path: Path) -> None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.fail("ffmpeg is missing: install ffmpeg (bash scripts/test.sh does)")
    parts = []
    for index, size in enumerate([(320, 192), (640, 360)]):
        mp4 = make_clip(tmp_path / f"part{index}.mp4", seconds=0.5, size=size, seed=70 + index)
        ts = tmp_path / f"part{index}.ts"
        subprocess.run(
            [ffmpeg, "-v", "error", "-i", mp4.video_path, "-c", "copy", "-bsf:v", "h264_mp4toannexb", "-f", "mpegts",
             str(ts)],
            check=True, timeout=60,
        )  # fmt: skip
        parts.append(ts.read_bytes())
    joined = tmp_path / "joined.ts"
    joined.write_bytes(b"".join(parts))  # MPEG-TS concatenates: the size changes mid-stream
    source = VideoSource(str(joined))
    source.start()
    shapes = []
    while (frame := source.read_frame(timeout=10)) is not None:
        shapes.append(frame.image.shape)
    source.join(5)
    assert shapes[0] == (192, 320, 3) and shapes[-1] == (360, 640, 3)
    assert source.properties is not None and (source.properties.width, source.properties.height) == (640, 360)


def test_pipeline_sink_error_is_a_framepipe_error() -> None:
    assert issubclass(PipelineSinkError, FramepipeError) and issubclass(PipelineSinkError, RuntimeError)


def test_no_thread_left() -> None:
    assert wait_for(lambda: not framepipe_threads(), timeout=10), framepipe_threads()
