"""InferencePipeline on real H.264 files with the real bundled model."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
import pytest
import supervision as sv

from framepipe import InferencePipeline, StatusUpdate, VideoFrame
from framepipe.demo.clip import read_truth
from framepipe.demo.evaluate import Score, match_frame, prediction_arrays
from framepipe.errors import InvalidVideoError, ModelNotFoundError, SourceNotFoundError
from framepipe.pipeline import SinkMode
from tests.helpers import framepipe_threads, wait_for

MODEL_ID = "framepipe-shapes/1"


def test_every_frame_exactly_once_in_order(clip) -> None:
    seen: list[tuple[int, float | None, tuple[int, ...]]] = []
    results: list[dict[str, Any]] = []

    def on_prediction(prediction: dict[str, Any], frame: VideoFrame) -> None:
        seen.append((frame.frame_id, frame.presentation_time, frame.image.shape))
        results.append(prediction)

    pipeline = InferencePipeline.init(video_reference=clip.video_path, model_id=MODEL_ID, on_prediction=on_prediction)
    pipeline.start()
    pipeline.join()
    assert [s[0] for s in seen] == list(range(1, clip.frames + 1))
    times = [s[1] for s in seen if s[1] is not None]
    assert len(times) == clip.frames and times == sorted(times)
    assert times[1] == pytest.approx(1 / clip.fps, abs=1e-3)
    assert {s[2] for s in seen} == {(clip.height, clip.width, 3)}
    assert pipeline.frames_dispatched == clip.frames and pipeline.dispatch_errors == 0
    assert not framepipe_threads()
    # the predictions are real: they agree with the clip's ground truth
    truth = read_truth(clip.truth_path)
    score = Score()
    for prediction, frame_truth in zip(results, truth, strict=True):
        match_frame(*prediction_arrays(prediction), frame_truth, score)
    assert score.precision >= 0.9 and score.recall >= 0.9, score


def test_predictions_convert_to_supervision(clip) -> None:
    converted: list[sv.Detections] = []

    def on_prediction(prediction: dict[str, Any], frame: VideoFrame) -> None:
        assert prediction["image"] == {"width": frame.image.shape[1], "height": frame.image.shape[0]}
        converted.append(sv.Detections.from_inference(prediction))

    pipeline = InferencePipeline.init(clip.video_path, MODEL_ID, on_prediction)  # Roboflow's positional order
    pipeline.start()
    pipeline.join()
    assert len(converted) == clip.frames
    non_empty = [d for d in converted if len(d)]
    assert len(non_empty) > clip.frames * 0.9
    detections = non_empty[0]
    assert detections.xyxy.shape[1] == 4 and detections.confidence is not None
    assert set(detections.data["class_name"]) <= {"circle", "square", "triangle", "star"}


def test_terminate_mid_file_returns_fast_and_leaves_no_thread(long_clip) -> None:
    delivered: list[int] = []

    def slow_sink(prediction: dict[str, Any], frame: VideoFrame) -> None:
        delivered.append(frame.frame_id)
        time.sleep(0.01)

    pipeline = InferencePipeline.init(long_clip.video_path, MODEL_ID, slow_sink)
    pipeline.start(use_main_thread=False)
    assert wait_for(lambda: len(delivered) >= 20)
    started = time.monotonic()
    pipeline.terminate()
    pipeline.join()
    elapsed = time.monotonic() - started
    assert elapsed < 1.0
    assert not framepipe_threads()
    assert 20 <= len(delivered) < long_clip.frames
    assert delivered == list(range(1, len(delivered) + 1))
    pipeline.terminate()  # twice is fine


def test_terminate_from_inside_the_callback(long_clip) -> None:
    delivered: list[int] = []
    holder: dict[str, InferencePipeline] = {}

    def sink(prediction: dict[str, Any], frame: VideoFrame) -> None:
        delivered.append(frame.frame_id)
        if frame.frame_id == 5:
            holder["pipeline"].terminate()

    pipeline = InferencePipeline.init(long_clip.video_path, MODEL_ID, sink)
    holder["pipeline"] = pipeline
    started = time.monotonic()
    pipeline.start()  # dispatches on this thread until terminated
    pipeline.join()
    assert time.monotonic() - started < 5.0
    assert delivered == [1, 2, 3, 4, 5]
    assert not framepipe_threads()


def test_missing_file_raises_at_init(tmp_path) -> None:
    missing = tmp_path / "nowhere.mp4"
    with pytest.raises(SourceNotFoundError, match=r"nowhere\.mp4"):
        InferencePipeline.init(str(missing), MODEL_ID, lambda p, f: None)
    assert not framepipe_threads()


def test_file_that_is_not_video_raises_at_start(not_a_video) -> None:
    pipeline = InferencePipeline.init(str(not_a_video), MODEL_ID, lambda p, f: None)
    with pytest.raises(InvalidVideoError, match=r"notes\.mp4"):
        pipeline.start()
    assert not framepipe_threads()


def test_unknown_model_id_raises_at_init(clip, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="no-such/4"):
        InferencePipeline.init(clip.video_path, "no-such/4", lambda p, f: None)


def test_raising_callback_is_logged_counted_and_survived(clip, caplog) -> None:
    delivered: list[int] = []
    updates: list[StatusUpdate] = []

    def flaky(prediction: dict[str, Any], frame: VideoFrame) -> None:
        delivered.append(frame.frame_id)
        if frame.frame_id % 10 == 0:
            raise RuntimeError(f"sink broke on {frame.frame_id}")

    caplog.set_level(logging.ERROR, logger="framepipe.pipeline")
    pipeline = InferencePipeline.init(clip.video_path, MODEL_ID, flaky, status_update_handlers=[updates.append])
    pipeline.start()
    pipeline.join()
    failures = clip.frames // 10
    assert delivered == list(range(1, clip.frames + 1))
    assert pipeline.dispatch_errors == failures
    errors = [u for u in updates if u.event_type == "INFERENCE_RESULTS_DISPATCHING_ERROR"]
    assert len(errors) == failures and errors[0].payload["error_message"] == "sink broke on 10"
    assert any("frame 10" in r.getMessage() for r in caplog.records)
    kinds = [u.event_type for u in updates]
    assert kinds.index("INFERENCE_THREAD_STARTED") < kinds.index("INFERENCE_THREAD_FINISHED")


def test_custom_logic_and_pipeline_hooks(clip) -> None:
    calls: list[str] = []
    batches: list[int] = []

    def on_video_frame(frames: list[VideoFrame]) -> list[dict[str, Any]]:
        batches.append(len(frames))
        return [{"mean": float(np.mean(f.image))} for f in frames]

    received: list[float] = []
    pipeline = InferencePipeline.init_with_custom_logic(
        video_reference=clip.video_path,
        on_video_frame=on_video_frame,
        on_prediction=lambda p, f: received.append(p["mean"]),
        on_pipeline_start=lambda: calls.append("start"),
        on_pipeline_end=lambda: calls.append("end"),
    )
    pipeline.start()
    pipeline.join()
    pipeline.join()
    assert calls == ["start", "end"]
    assert len(received) == clip.frames and sum(batches) == clip.frames


def test_two_sources_give_lists_ordered_by_source(clip, long_clip) -> None:
    batches: list[tuple[list[Any], list[Any]]] = []
    pipeline = InferencePipeline.init(
        [clip.video_path, long_clip.video_path],
        MODEL_ID,
        lambda predictions, frames: batches.append((predictions, frames)),
    )
    pipeline.start()
    pipeline.join()
    assert all(len(p) == 2 and len(f) == 2 for p, f in batches)
    first = [f[0].frame_id for _, f in batches if f[0] is not None]
    second = [f[1].frame_id for _, f in batches if f[1] is not None]
    assert first == list(range(1, clip.frames + 1))
    assert second == list(range(1, long_clip.frames + 1))
    assert all(f[1].source_id == 1 for _, f in batches if f[1] is not None)
    # after the short clip ends its slot is None
    assert batches[-1][1][0] is None and batches[-1][0][0] is None


def test_sequential_sink_mode_with_two_sources(clip) -> None:
    calls: list[tuple[int | None, int]] = []
    pipeline = InferencePipeline.init(
        [clip.video_path, clip.video_path],
        MODEL_ID,
        lambda p, f: calls.append((f.source_id, f.frame_id)),
        sink_mode=SinkMode.SEQUENTIAL,
    )
    pipeline.start()
    pipeline.join()
    assert len(calls) == 2 * clip.frames
    assert [c for c in calls if c[0] == 1] == [(1, i) for i in range(1, clip.frames + 1)]


def test_start_twice_is_refused(clip) -> None:
    from framepipe.errors import PipelineStateError

    pipeline = InferencePipeline.init(clip.video_path, MODEL_ID, None)
    pipeline.start()
    pipeline.join()
    with pytest.raises(PipelineStateError):
        pipeline.start()
    assert pipeline.frames_dispatched == clip.frames


def test_join_from_the_callback_is_refused(clip) -> None:
    errors: list[BaseException] = []
    holder: dict[str, InferencePipeline] = {}

    def sink(prediction: dict[str, Any], frame: VideoFrame) -> None:
        if frame.frame_id == 1:
            try:
                holder["pipeline"].join()
            except Exception as error:
                errors.append(error)

    pipeline = InferencePipeline.init(clip.video_path, MODEL_ID, sink)
    holder["pipeline"] = pipeline
    pipeline.start(use_main_thread=False)
    pipeline.join()
    assert errors and "would wait forever" in str(errors[0])
    assert threading.active_count() >= 1 and not framepipe_threads()
