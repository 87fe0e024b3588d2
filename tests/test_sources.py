"""Sources on real files: frame counts, pacing, timestamps, buffering, pause/mute, damaged input."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest

from framepipe.demo.clip import make_clip
from framepipe.errors import (
    InvalidVideoError,
    SourceConnectionError,
    SourceNotFoundError,
    StreamOperationNotAllowedError,
)
from framepipe.sources import (
    BufferConsumptionStrategy,
    BufferFillingStrategy,
    FrameBuffer,
    SourceOptions,
    StatusUpdate,
    StreamState,
    VideoFrame,
    VideoSource,
)
from tests.helpers import wait_for


def drain(source: VideoSource, limit: float = 60.0) -> list[VideoFrame]:
    frames: list[VideoFrame] = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        frame = source.read_frame(timeout=limit)
        if frame is None:
            return frames
        frames.append(frame)
    raise AssertionError("the source did not end in time")


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory) -> Any:
    return make_clip(tmp_path_factory.mktemp("short") / "two_seconds.mp4", seconds=2.0, size=(160, 96), seed=3)


def test_file_delivers_exactly_its_frames_with_wait(clip) -> None:
    updates: list[StatusUpdate] = []
    source = VideoSource(clip.video_path, source_id=3, buffer_size=2, status_update_handlers=[updates.append])
    source.start()
    assert source.buffer_filling_strategy is BufferFillingStrategy.WAIT
    assert source.buffer_consumption_strategy is BufferConsumptionStrategy.LAZY
    frames = []
    for frame in iter(lambda: source.read_frame(timeout=10), None):
        frames.append(frame)
        time.sleep(0.002)  # a consumer slower than the decoder: WAIT must not drop
    assert [f.frame_id for f in frames] == list(range(1, clip.frames + 1))
    assert source.frames_dropped == 0 and source.frames_decoded == clip.frames
    first = frames[0]
    assert first.source_id == 3 and first.comes_from_video_file is True and first.fps == pytest.approx(30.0)
    assert [f.presentation_time for f in frames[:3]] == pytest.approx([0.0, 1 / 30, 2 / 30], abs=1e-3)
    assert all(a.frame_timestamp <= b.frame_timestamp for a, b in itertools.pairwise(frames))
    kinds = [u.event_type for u in updates if u.event_type != "FRAME_DROPPED"]
    assert kinds[:2] == ["SOURCE_STATE_UPDATE", "CONNECTED"]
    end = next(u for u in updates if u.event_type == "END_OF_STREAM")
    assert end.payload["reason"] == "end of file" and source.state is StreamState.ENDED


def test_realtime_file_takes_its_duration(short_clip) -> None:
    source = VideoSource(short_clip.video_path, options=SourceOptions(realtime=True))
    source.start()
    # played like a camera: freshest frame, and the pace of the clip
    assert source.buffer_filling_strategy is BufferFillingStrategy.ADAPTIVE_DROP_OLDEST
    started = time.monotonic()
    frames = drain(source)
    elapsed = time.monotonic() - started
    assert elapsed == pytest.approx(2.0, rel=0.1)
    assert len(frames) == short_clip.frames and frames[-1].measured_fps == pytest.approx(30.0, rel=0.15)


def test_missing_folder_empty_and_non_video_files(tmp_path: Path, not_a_video: Path) -> None:
    with pytest.raises(SourceNotFoundError, match="nowhere"):
        VideoSource(str(tmp_path / "nowhere.mp4")).start()
    with pytest.raises(InvalidVideoError, match="is a folder"):
        VideoSource(str(tmp_path)).start()
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InvalidVideoError, match=r"empty \(0 bytes\)"):
        VideoSource(str(empty)).start()
    with pytest.raises(InvalidVideoError, match="not a video FFmpeg can read"):
        VideoSource(str(not_a_video)).start()


def test_unsupported_codec(short_clip, tmp_path: Path) -> None:
    data = Path(short_clip.video_path).read_bytes()
    entry = data.find(b"avc1", data.find(b"stsd"))  # the sample entry naming the codec
    assert entry > 0
    patched = tmp_path / "unknown_codec.mp4"
    patched.write_bytes(data[:entry] + b"zzzz" + data[entry + 4 :])
    with pytest.raises(InvalidVideoError, match="no decoder for its video codec"):
        VideoSource(str(patched)).start()


def test_truncated_file_ends_with_the_reason(clip, tmp_path: Path) -> None:
    data = Path(clip.video_path).read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    updates: list[StatusUpdate] = []
    source = VideoSource(str(truncated), status_update_handlers=[updates.append])
    source.start()
    frames = drain(source)
    assert 0 < len(frames) < clip.frames
    end = next(u for u in updates if u.event_type == "END_OF_STREAM")
    assert f"after {len(frames)} of its {clip.frames} frames (truncated" in end.payload["reason"]
    assert source.error is None  # the frames before the damage were delivered


def test_corrupt_packets_are_skipped_and_counted(clip, tmp_path: Path) -> None:
    data = bytearray(Path(clip.video_path).read_bytes())
    rng = np.random.default_rng(0)
    for fraction in (0.3, 0.5, 0.7):
        start = int(len(data) * fraction)
        data[start : start + 3000] = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    source = VideoSource(str(damaged))
    source.start()
    frames = drain(source)
    assert source.corrupt_packets > 0
    assert clip.frames * 0.7 < len(frames) < clip.frames
    assert [f.frame_id for f in frames] == list(range(1, len(frames) + 1))


def test_pause_mute_and_resume(short_clip) -> None:
    source = VideoSource(short_clip.video_path, options=SourceOptions(realtime=True))
    with pytest.raises(StreamOperationNotAllowedError, match="NOT_STARTED"):
        source.pause()
    source.start()
    assert source.read_frame(timeout=5) is not None
    source.pause()
    assert source.state is StreamState.PAUSED and not source.is_producing()
    with pytest.raises(StreamOperationNotAllowedError, match="mute needs RUNNING"):
        source.mute()
    decoded = source.frames_decoded
    time.sleep(0.4)
    assert source.frames_decoded <= decoded + 1  # nothing read while paused
    source.resume()
    assert wait_for(lambda: source.frames_decoded > decoded + 3, timeout=5)
    source.mute()
    dropped, decoded = source.frames_dropped, source.frames_decoded
    time.sleep(0.4)
    assert source.frames_decoded > decoded and source.frames_dropped - dropped == source.frames_decoded - decoded
    source.resume()
    with pytest.raises(StreamOperationNotAllowedError, match="resume needs MUTED or PAUSED"):
        source.resume()
    assert drain(source)
    source.terminate()


def test_no_camera_here_is_a_clear_error() -> None:
    with pytest.raises(SourceConnectionError, match="could not open camera 99"):
        VideoSource(99).start()


def test_webcam_index_goes_to_opencv(short_clip) -> None:
    # A webcam cannot exist on this machine: cv2.VideoCapture is given the clip instead of the
    # device index, so that the int path (OpenCV backend, live defaults) is exercised for real.
    import cv2

    real_capture = cv2.VideoCapture
    with mock.patch("cv2.VideoCapture", lambda index: real_capture(short_clip.video_path)):
        source = VideoSource(0)
        source.start()
        assert source.buffer_filling_strategy is BufferFillingStrategy.ADAPTIVE_DROP_OLDEST
        frame = source.read_frame(timeout=5)
        assert frame is not None and frame.image.shape == (96, 160, 3)
        source.terminate()


def test_buffer_strategies() -> None:
    causes: list[str] = []
    wait = FrameBuffer(2, BufferFillingStrategy.WAIT, BufferConsumptionStrategy.LAZY)
    assert wait.put("a") and wait.put("b")
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    assert wait.put("c", stop) is False  # waited for room until stopped
    assert time.monotonic() - started >= 0.15 and wait.dropped == 0
    latest = FrameBuffer(
        2, BufferFillingStrategy.DROP_LATEST, BufferConsumptionStrategy.LAZY, lambda i, c: causes.append(c)
    )
    assert [latest.put(x) for x in "abc"] == [True, True, False]
    assert latest.get(0) == "a" and latest.dropped == 1 and causes == ["DROP_LATEST strategy"]
    eager = FrameBuffer(4, BufferFillingStrategy.DROP_OLDEST, BufferConsumptionStrategy.EAGER)
    for x in "abc":
        eager.put(x)
    assert eager.get(0) == "c" and eager.dropped == 2  # older frames count as dropped too
    eager.end()
    assert eager.get(0) is None
    with pytest.raises(TimeoutError):
        FrameBuffer(1, BufferFillingStrategy.WAIT, BufferConsumptionStrategy.LAZY).get(timeout=0.05)


def test_adaptive_strategy_skips_while_the_consumer_lags() -> None:
    drops: list[tuple[Any, str]] = []
    latest = FrameBuffer(
        4, BufferFillingStrategy.ADAPTIVE_DROP_LATEST, BufferConsumptionStrategy.LAZY, lambda i, c: drops.append((i, c))
    )
    oldest = FrameBuffer(4, BufferFillingStrategy.ADAPTIVE_DROP_OLDEST, BufferConsumptionStrategy.LAZY)
    skipped, got_latest, got_oldest = 0, [], []
    for index in range(60):  # the source writes every 5 ms, the consumer reads every 4th frame
        time.sleep(0.005)
        if latest.should_skip():
            skipped += 1
        else:
            latest.put(index)
        assert not oldest.should_skip()  # never skips: it drops what waits instead
        oldest.put(index)
        if index % 4 == 0:
            got_latest.append(latest.get(timeout=0))
            got_oldest.append(oldest.get(timeout=0))
    assert skipped > 10 and latest.dropped >= skipped
    assert "ADAPTIVE strategy" in {cause for _, cause in drops}
    # ADAPTIVE_DROP_LATEST hands over a frame that waited while newer ones were skipped; once the
    # consumer is known to lag, ADAPTIVE_DROP_OLDEST hands over the frame just written
    assert sum(g != i for g, i in zip(got_latest[5:], range(20, 60, 4), strict=False)) > 3
    assert got_oldest[5:] == list(range(20, 60, 4))
    assert oldest.dropped == 60 - len(got_oldest) - len(oldest._items)


def test_looping_file_keeps_counting(short_clip) -> None:
    source = VideoSource(short_clip.video_path, options=SourceOptions(loop=True))
    source.start()
    frames = [source.read_frame(timeout=5) for _ in range(short_clip.frames * 2 + 5)]
    assert [f.frame_id for f in frames if f is not None] == list(range(1, short_clip.frames * 2 + 6))
    assert frames[short_clip.frames] is not None and frames[short_clip.frames].presentation_time == 0.0
    source.terminate()
