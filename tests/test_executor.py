"""One session per model per process, shared through its batching executor: pipelines and
threads on one model share batches; errors, deadlines and eviction behave."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from framepipe import InferencePipeline
from framepipe.demo.scenes import random_scene
from framepipe.errors import DeadlineExceededError
from framepipe.models import BatchingExecutor, ModelManager, OnnxModel, get_model, load_model
from framepipe.sources import VideoFrame
from tests.helpers import strip_ids, wait_for
from tests.onnx_models import build_model

MODEL_ID = "framepipe-shapes/1"


class CountingSession:
    """A real onnxruntime session that records every run's batch size; ``delay`` seconds per run
    stand for a larger network (so that frames queue while a run is in flight)."""

    def __init__(self, session: Any, delay: float = 0.0, poison: float | None = None) -> None:
        self._session = session
        self.delay = delay
        self.poison = poison
        self.batches: list[int] = []
        self._lock = threading.Lock()

    def run(self, names: Any, feed: dict[str, np.ndarray]) -> Any:
        batch = next(iter(feed.values()))
        with self._lock:
            self.batches.append(int(batch.shape[0]))
        if self.poison is not None and (batch.reshape(len(batch), -1).mean(axis=1) >= self.poison).any():
            raise RuntimeError("poisoned batch")
        if self.delay:
            time.sleep(self.delay)
        return self._session.run(names, feed)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def scenes(count: int, seed: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [random_scene(320, 192, rng)[0] for _ in range(count)]


def fresh_model(
    tmp_path: Path, delay: float = 0.0, poison: float | None = None
) -> tuple[str, OnnxModel, CountingSession]:
    """The bundled model under a path of its own (its own entry in the process's table), with a
    counting session."""
    import shutil

    from framepipe.artifacts import resolve_model

    folder = tmp_path / "shapes-copy"
    shutil.copytree(resolve_model(MODEL_ID).folder, folder)
    model = get_model(str(folder))
    assert isinstance(model, OnnxModel)
    counting = CountingSession(model.session, delay, poison)
    model.session = counting
    return str(folder), model, counting


def test_two_pipelines_on_one_model_share_its_session_and_batches(tmp_path: Path, clip) -> None:
    model_id, model, counting = fresh_model(tmp_path, delay=0.01)
    received: list[list[VideoFrame]] = [[], []]
    pipelines = [
        InferencePipeline.init(clip.video_path, model_id, lambda p, f, i=i: received[i].append(f)) for i in range(2)
    ]
    assert pipelines[0].model is pipelines[1].model is model  # one model, one session
    for pipeline in pipelines:
        pipeline.start(use_main_thread=False)
    for pipeline in pipelines:
        pipeline.join()
    assert [len(r) for r in received] == [clip.frames, clip.frames]  # every frame once, to its own pipeline
    assert [f.frame_id for f in received[0]] == list(range(1, clip.frames + 1))
    frames = sum(counting.batches)
    assert frames == 2 * clip.frames
    assert len(counting.batches) < frames and max(counting.batches) >= 2  # frames of both pipelines ran together
    assert model.executor.stats.runs == len(counting.batches)


def test_infer_from_eight_threads_while_a_pipeline_runs_equals_a_serial_run(long_clip) -> None:
    model = get_model(MODEL_ID)
    images = scenes(24)
    serial = [strip_ids(model.infer(image)) for image in images]
    pipeline = InferencePipeline.init(long_clip.video_path, MODEL_ID, lambda p, f: None)
    pipeline.start(use_main_thread=False)
    results: dict[int, list[dict[str, Any]]] = {}
    errors: list[BaseException] = []

    def client(index: int) -> None:
        try:
            mine = images[index::8]
            results[index] = [strip_ids(get_model(MODEL_ID).infer(image)) for image in mine]
            results[index] += [strip_ids(r) for r in get_model(MODEL_ID).infer(mine)]  # and as one list
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    pipeline.terminate()
    pipeline.join()
    assert not errors
    for index in range(8):
        expected = serial[index::8]
        assert results[index] == expected + expected
    assert pipeline.frames_inferred > 0


def test_a_batch_that_raises_fails_only_its_own_futures(tmp_path: Path) -> None:
    _, model, counting = fresh_model(tmp_path, poison=0.99)
    executor = BatchingExecutor(model, slots=1, max_batch_size=2)
    white, normal = np.full((192, 320, 3), 255, np.uint8), scenes(1)[0]
    first = executor.submit([white, normal])  # one batch: the white frame poisons it
    second = executor.submit([normal, normal])  # the next batch
    for future in first:
        with pytest.raises(RuntimeError, match="poisoned"):
            future.result(timeout=30)
    assert [f.result(timeout=30).image_size for f in second] == [(320, 192), (320, 192)]
    assert counting.batches == [2, 2] and executor.stats.failed == 2 and executor.stats.runs == 1
    assert executor.infer([normal])[0].detections is not None  # the executor goes on


def test_frames_past_their_deadline_fail_and_do_not_run(tmp_path: Path) -> None:
    _, model, counting = fresh_model(tmp_path)
    executor = BatchingExecutor(model, slots=1, max_batch_size=8)
    late = executor.submit(scenes(2), deadline=time.monotonic() - 1.0)
    for future in late:
        with pytest.raises(DeadlineExceededError, match="deadline"):
            future.result(timeout=10)
    assert counting.batches == [] and executor.stats.expired == 2
    assert len(executor.infer(scenes(3), deadline=time.monotonic() + 60)) == 3 and counting.batches == [3]


def test_a_caller_that_gives_up_leaves_no_work_behind(tmp_path: Path) -> None:
    _, model, counting = fresh_model(tmp_path, delay=0.3)
    executor = BatchingExecutor(model, slots=1, max_batch_size=1)
    busy = threading.Thread(target=lambda: executor.infer(scenes(1)))
    busy.start()
    assert wait_for(lambda: executor.in_flight == 1, timeout=10)
    with pytest.raises(TimeoutError, match="within"):
        executor.infer(scenes(2), timeout=0.05)  # the only slot is busy: nothing of ours has started
    busy.join(30)
    assert executor.queue_depth == 2  # still listed, but cancelled: the next run skips them
    assert len(executor.infer(scenes(1))) == 1
    assert counting.batches == [1, 1] and executor.queue_depth == 0


def test_an_idle_model_runs_a_frame_at_once_and_a_busy_one_batches_what_waits(tmp_path: Path) -> None:
    _, model, counting = fresh_model(tmp_path, delay=0.05)
    executor = BatchingExecutor(model, slots=1, max_batch_size=8)
    executor.infer(scenes(1))
    assert counting.batches == [1]  # nothing waited for a batch to fill
    images = scenes(6)
    outcomes: list[Any] = []
    threads = [threading.Thread(target=lambda i=i: outcomes.append(executor.infer([images[i]]))) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(outcomes) == 6 and sum(counting.batches[1:]) == 6
    assert len(counting.batches) - 1 < 6  # the frames that waited for the one slot ran together
    assert executor.queue_depth == 0 and executor.in_flight == 0


def test_batch_sizes_that_change_reuse_one_preallocated_tensor(tmp_path: Path) -> None:
    _, model, _ = fresh_model(tmp_path)
    executor = BatchingExecutor(model, slots=1, max_batch_size=8)
    executor.infer(scenes(2))
    slot = executor._free[0]
    tensor = slot.state["preprocess"].tensor
    assert tensor.shape[0] == 8  # allocated once for the largest batch
    for size in (5, 1, 8, 3):
        assert len(executor.infer(scenes(size))) == size
        assert slot.state["preprocess"].tensor is tensor


def test_the_io_binding_path_reuses_its_device_buffer(tmp_path: Path) -> None:
    # the CUDA path, on the CPU build: IOBinding with a buffer per slot and batch shape, reused
    _, model, _ = fresh_model(tmp_path)
    images = scenes(3)
    plain = [strip_ids(r.to_roboflow()) for r in BatchingExecutor(model, slots=1, max_batch_size=8).infer(images)]
    model.use_io_binding = True
    model.session = model.session._session  # IOBinding needs the real session
    executor = BatchingExecutor(model, slots=1, max_batch_size=8)
    bound = [strip_ids(r.to_roboflow()) for r in executor.infer(images)]
    executor.infer(scenes(3, seed=9))
    assert bound == plain and executor._free[0].state["binding"].buffers == 1


def test_eviction_never_drops_a_model_in_use(tmp_path: Path) -> None:
    loads: list[str] = []

    def loader(model_id: str) -> Any:
        loads.append(model_id)
        return load_model(model_id)

    manager: ModelManager[Any] = ModelManager(loader, max_models=1)
    lease = manager.acquire(MODEL_ID)
    other = tmp_path / "other.onnx"
    build_model(other, {"output0": np.zeros((7, 8), np.float32)})
    other_model = manager.get(str(other))
    assert MODEL_ID in manager and manager.held(MODEL_ID) == 1  # held: not evicted, over the limit for now
    assert manager.get(MODEL_ID) is lease.model and loads == [MODEL_ID, str(other)]
    lease.release()  # the limit applies again: the least recently used idle model goes
    assert str(other) not in manager and MODEL_ID in manager
    assert manager.get(str(other)) is other_model  # evicted, but still referenced: taken back, not reloaded
    assert MODEL_ID not in manager and len(manager) == 1
    # evicted but still used by someone (``lease.model`` is referenced here): found again, not reloaded
    assert manager.get(MODEL_ID) is lease.model and loads == [MODEL_ID, str(other)]
    with manager.acquire(MODEL_ID) as model:
        assert model is lease.model and manager.held(MODEL_ID) == 1
    assert manager.held(MODEL_ID) == 0


def test_a_pipeline_holds_its_model_until_it_ends(clip) -> None:
    from framepipe.models import DEFAULT_MANAGER

    pipeline = InferencePipeline.init(clip.video_path, MODEL_ID, lambda p, f: None)
    assert pipeline.model is get_model(MODEL_ID)  # a file pipeline and get_model share one session
    assert DEFAULT_MANAGER.held((MODEL_ID, None)) >= 1
    before = DEFAULT_MANAGER.held((MODEL_ID, None))
    pipeline.start()
    pipeline.join()
    assert DEFAULT_MANAGER.held((MODEL_ID, None)) == before - 1
