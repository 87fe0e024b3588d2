"""Batch collection cost per frame must not grow with the number of sources (issue 13, fault 8).

The sources are generated in memory (a live camera's behaviour: the newest frame replaces the one
waiting), because 64 real decoders do not fit on a 2-core machine; the pipeline around them is the
real one. The test reports the collector thread's CPU time per frame for 1, 8 and 64 sources.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import numpy as np

from framepipe import InferencePipeline, VideoFrame
from framepipe.sources import SourceOptions
from tests.helpers import framepipe_threads, wait_for

TOTAL_RATE = 400.0  # frames per second over all sources
FRAMES = 800


class GeneratedLiveSource:
    """A live source fed by the test: the newest frame replaces a waiting one (counted as dropped)."""

    def __init__(self, source_id: int) -> None:
        self.source_id = source_id
        self.reference = f"rtsp://generated/{source_id}"
        self.options = SourceOptions(realtime=True)
        self.error: BaseException | None = None
        self.frames_decoded = 0
        self.frames_dropped = 0
        self._latest: VideoFrame | None = None
        self._ended = False
        self._condition = threading.Condition()
        self._listeners: list[Any] = []

    def add_frame_listener(self, listener: Any) -> None:
        self._listeners.append(listener)

    def add_status_handler(self, handler: Any) -> None:
        pass

    def start(self) -> None:
        pass

    def is_producing(self) -> bool:
        return not self._ended

    @property
    def is_alive(self) -> bool:
        return not self._ended

    def push(self, image: np.ndarray) -> None:
        with self._condition:
            if self._latest is not None:
                self.frames_dropped += 1
            self.frames_decoded += 1
            self._latest = VideoFrame(image, self.frames_decoded, datetime.now(), 30.0, 30.0, self.source_id, False)
            self._condition.notify_all()
        for listener in self._listeners:
            listener()

    def end(self) -> None:
        with self._condition:
            self._ended = True
            self._condition.notify_all()
        for listener in self._listeners:
            listener()

    def read_frame(self, timeout: float | None = None) -> VideoFrame | None:
        with self._condition:
            if not self._condition.wait_for(lambda: self._latest is not None or self._ended, timeout):
                raise TimeoutError("no frame")
            frame, self._latest = self._latest, None
            return frame

    def terminate(self, wait: bool = True, timeout: float = 1.0) -> None:
        self.end()

    def join(self, timeout: float | None = None) -> None:
        pass


def _thread_cpu(name: str) -> float:
    thread = next(t for t in threading.enumerate() if t.name == name)
    assert thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def _collector_cpu_per_frame(count: int) -> float:
    sources = [GeneratedLiveSource(i) for i in range(count)]
    pipeline = InferencePipeline(sources, lambda frames: [{"predictions": []}] * len(frames), None)
    image = np.zeros((8, 8, 3), np.uint8)
    pipeline.start(use_main_thread=False)
    try:
        assert wait_for(lambda: any(t.name == "framepipe-collector" for t in threading.enumerate()), timeout=10)
        cpu_before, inferred_before = _thread_cpu("framepipe-collector"), pipeline.frames_inferred
        began = time.monotonic()
        for index in range(FRAMES):  # bounded: FRAMES frames at TOTAL_RATE
            delay = began + index / TOTAL_RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sources[index % count].push(image)
        wait_for(lambda: pipeline.frames_inferred - inferred_before >= FRAMES * 0.5, timeout=10)
        cpu = _thread_cpu("framepipe-collector") - cpu_before
        inferred = pipeline.frames_inferred - inferred_before
    finally:
        for source in sources:
            source.end()
        pipeline.join(timeout=10)
    assert inferred > 0
    return cpu / inferred


def test_collector_cpu_per_frame_is_flat_from_1_to_64_sources() -> None:
    per_frame = {count: _collector_cpu_per_frame(count) for count in (1, 8, 64)}
    report = ", ".join(f"{count} sources: {seconds * 1e6:.0f} us" for count, seconds in per_frame.items())
    print(f"collector CPU per frame: {report}")
    # flat: 64 sources cost at most twice the cheaper of 1 and 8 sources per frame (plus 20 us of noise)
    assert per_frame[64] <= 2 * min(per_frame[1], per_frame[8]) + 20e-6, report
    assert not framepipe_threads()
