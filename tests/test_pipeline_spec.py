"""The engine's life cycle, sinks with a lifecycle, sink spec strings and pipelines as data."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from framepipe import InferencePipeline, VideoFrame
from framepipe.errors import PipelineStateError, SinkSpecError
from framepipe.events import EventType
from framepipe.pipeline import PipelineState
from framepipe.pipeline.spec import PipelineSpec
from framepipe.sinks import InMemoryBufferSink, JsonlSink, MultiSink, Sink, as_sink
from framepipe.sinks.registry import build_sink, parse_sink_spec
from framepipe.sources import StatusUpdate
from tests.helpers import framepipe_threads, probe_video


def _empty(frames: list[VideoFrame]) -> list[dict[str, Any]]:
    return [{"predictions": []} for _ in frames]


def test_states_and_the_message_for_each_wrong_transition(clip) -> None:
    pipeline = InferencePipeline.init_with_custom_logic(clip.video_path, _empty)
    assert pipeline.state is PipelineState.CREATED
    with pytest.raises(PipelineStateError, match="before start"):
        pipeline.join()
    pipeline.start()
    assert pipeline.state is PipelineState.STOPPING  # every source ended; join() finishes it
    with pytest.raises(PipelineStateError, match="stopping"):
        pipeline.start()
    pipeline.join()
    assert pipeline.state is PipelineState.ENDED
    with pytest.raises(PipelineStateError, match="ended"):
        pipeline.start()
    pipeline.terminate()  # allowed in every state
    pipeline.join()  # and so is joining an ended pipeline
    assert "state=ended" in repr(pipeline)


def test_with_block_terminates_joins_and_releases(long_clip, tmp_path: Path) -> None:
    path = tmp_path / "with.jsonl"
    sink = JsonlSink(path, flush_interval=3600)
    with InferencePipeline.init_with_custom_logic(long_clip.video_path, _empty, sink) as pipeline:
        pipeline.start(use_main_thread=False)
    assert pipeline.state is PipelineState.ENDED and not pipeline.is_running()
    assert len(path.read_text().splitlines()) == pipeline.frames_dispatched < long_clip.frames
    assert not framepipe_threads()
    unstarted = JsonlSink(tmp_path / "never.jsonl")
    with InferencePipeline.init_with_custom_logic(long_clip.video_path, _empty, unstarted):
        pass
    with pytest.raises(RuntimeError, match="released"):  # released although never started
        unstarted(None, None)


def test_status_event_types_are_an_enum_with_roboflow_values(clip) -> None:
    updates: list[StatusUpdate] = []
    pipeline = InferencePipeline.init_with_custom_logic(
        clip.video_path, _empty, status_update_handlers=[updates.append]
    )
    pipeline.start()
    pipeline.join()
    kinds = {u.event_type for u in updates}
    assert all(isinstance(k, EventType) for k in kinds)
    assert {"INFERENCE_THREAD_STARTED", "SOURCE_STATE_UPDATE", "VIDEO_CONSUMPTION_FINISHED"} <= kinds


def test_environment_defaults_are_read_when_a_pipeline_is_built(clip, monkeypatch) -> None:
    monkeypatch.setenv("INFERENCE_PIPELINE_PREDICTIONS_QUEUE_SIZE", "3")
    monkeypatch.setenv("VIDEO_SOURCE_BUFFER_SIZE", "5")
    pipeline = InferencePipeline.init_with_custom_logic(clip.video_path, _empty)
    assert pipeline.config.sink_queue.size == 3 and pipeline.sources[0].buffer_size == 5
    monkeypatch.setenv("INFERENCE_PIPELINE_PREDICTIONS_QUEUE_SIZE", "oops")
    with pytest.raises(ValueError, match="INFERENCE_PIPELINE_PREDICTIONS_QUEUE_SIZE"):
        InferencePipeline.init_with_custom_logic(clip.video_path, _empty)


def test_as_sink_gives_every_callable_the_interface(tmp_path: Path) -> None:
    jsonl = JsonlSink(tmp_path / "a.jsonl")
    assert as_sink(jsonl) is jsonl and isinstance(jsonl, Sink)
    bound = as_sink(jsonl.on_prediction)
    bound.release()  # releases the object the method is bound to
    with pytest.raises(RuntimeError, match="released"):
        jsonl(None, None)
    calls: list[Any] = []
    plain = as_sink(lambda p, f: calls.append(f))
    plain({}, "frame")
    plain.release()
    assert calls == ["frame"]
    with pytest.raises(TypeError, match="callable"):
        as_sink(42)


def test_spec_strings_build_real_sinks(clip, tmp_path: Path) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(10)
    port = receiver.getsockname()[1]
    specs = [f"jsonl:{tmp_path / 'out.jsonl'}", f"video:{tmp_path / 'out.mp4'}", f"udp:127.0.0.1:{port}", "memory:4"]
    sinks = MultiSink([build_sink(s) for s in specs], names=specs)
    memory = sinks.children[3]
    assert isinstance(memory, InMemoryBufferSink)
    pipeline = InferencePipeline.init_with_custom_logic(clip.video_path, _empty, sinks)
    pipeline.start()
    pipeline.join()
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == clip.frames
    assert probe_video(tmp_path / "out.mp4")[:2] == ("h264", clip.frames)
    assert json.loads(receiver.recv(65536))["inference_metadata"]["frame_id"] == 1
    receiver.close()
    kept = []
    while not memory.empty():
        kept.append(memory.consume_prediction()[1][0].frame_id)
    assert kept == list(range(clip.frames - 3, clip.frames + 1))


@pytest.mark.parametrize(
    ("spec", "problem"),
    [("printer:lp0", "expected display"), ("udp:host", "udp:HOST:PORT"), ("jsonl:", "path"), ("display:x", "nothing")],
)
def test_bad_spec_strings_say_what_is_wrong(spec: str, problem: str) -> None:
    with pytest.raises(SinkSpecError, match=problem):
        parse_sink_spec(spec)


def test_pipeline_spec_round_trips_and_builds(clip, tmp_path: Path) -> None:
    spec = PipelineSpec(
        "framepipe-shapes/1",
        [clip.video_path],
        {"confidence": 0.5, "max_fps": None, "source_options": {"read_timeout": 2.0}},
        [f"jsonl:{tmp_path / 'spec.jsonl'}"],
    )
    again = PipelineSpec.from_json(spec.to_json())
    assert again == spec and json.loads(again.to_json())["sinks"] == spec.sinks
    pipeline = again.build()
    assert pipeline.inference_parameters.confidence == 0.5
    assert pipeline.sources[0].options.read_timeout == 2.0
    pipeline.start()
    pipeline.join()
    lines = (tmp_path / "spec.jsonl").read_text().splitlines()
    assert len(lines) == clip.frames and "predictions" in json.loads(lines[0])


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"model_id": "", "video_reference": ["a.mp4"]}, "model_id"),
        ({"model_id": "m/1", "video_reference": []}, "video_reference"),
        ({"model_id": "m/1", "video_reference": ["a.mp4"], "parameters": {"confidance": 1}}, "confidance"),
        ({"model_id": "m/1", "video_reference": ["a.mp4"], "sinks": ["fax:1"]}, "fax:1"),
        ({"model_id": "m/1", "video_reference": ["a.mp4"], "parameters": {"source_options": {"x": 1}}}, "source_opt"),
        ({"model_id": "m/1", "video_reference": ["a.mp4"], "colour": "red"}, "colour"),
    ],
)
def test_pipeline_spec_is_validated(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(SinkSpecError, match=problem):
        PipelineSpec.from_dict(data)
