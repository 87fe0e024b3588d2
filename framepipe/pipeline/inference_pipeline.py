"""``InferencePipeline``: sources → batch collector → inference workers → sink dispatcher, with
Roboflow Inference's API.

Threads (all named ``framepipe-*``): one decoder per source fills a bounded buffer; the collector
gathers at most one frame per source into a batch without waiting for a stalled camera; several
inference workers run the model on batches in parallel (on CPU two workers with the cores split
between them beat one worker with all of them); results are put back in order and queued for
the dispatcher (the caller's thread with ``start()``, or its own with
``start(use_main_thread=False)``), which calls ``on_prediction``. Every queue is bounded. With
files nothing is dropped: a slow sink slows the pipeline down. With live sources a slow sink
never slows inference: the oldest waiting results are dropped and counted.

Example:
    >>> from framepipe import InferencePipeline
    >>> def on_prediction(predictions, video_frame):
    ...     print(video_frame.frame_id, len(predictions["predictions"]))
    >>> pipeline = InferencePipeline.init(  # doctest: +SKIP
    ...     video_reference="clip.mp4", model_id="framepipe-shapes/1", on_prediction=on_prediction
    ... )
    >>> pipeline.start()  # doctest: +SKIP
    >>> pipeline.join()  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from framepipe.errors import PipelineStateError, SourceNotFoundError
from framepipe.models import InferenceParameters, Model, ModelLease, acquire_model
from framepipe.pipeline.collector import BatchCollector, CollectedFrame
from framepipe.pipeline.handlers import model_handler
from framepipe.pipeline.metrics import MetricsSnapshot, PipelineMetrics, prometheus_text
from framepipe.pipeline.reorder import ReorderBuffer
from framepipe.pipeline.sink_queue import SinkQueue
from framepipe.pipeline.tracking import SourceTrackers, TrackerFactory
from framepipe.pipeline.workers import plan_workers
from framepipe.predictions import to_payload
from framepipe.sources import (
    DEFAULT_BUFFER_SIZE,
    BufferConsumptionStrategy,
    BufferFillingStrategy,
    SourceOptions,
    StatusUpdate,
    UpdateSeverity,
    VideoFrame,
    VideoSource,
)
from framepipe.sources.readers import STREAM_PREFIXES, redact

if TYPE_CHECKING:
    from framepipe.pipeline.metrics_server import MetricsServer

logger = logging.getLogger("framepipe.pipeline")

PREDICTIONS_QUEUE_SIZE = int(os.environ.get("INFERENCE_PIPELINE_PREDICTIONS_QUEUE_SIZE", "16"))
"""Results waiting for the sink. Roboflow queues 512 (a gigabyte of 720p frames behind a slow
sink); 16 is enough to absorb sink jitter. Overridden by Roboflow's environment variable."""

LIVE_BATCH_WINDOW = 0.02
"""Default ``batch_collection_timeout`` when any source is live: a batch waits at most 20 ms
for the other cameras after its first frame."""

_POLL = 0.05
_END = object()

VideoReference = str | int | os.PathLike[str]
VideoReferences = VideoReference | Sequence[VideoReference]
SinkHandler = Callable[..., None]
InferenceHandler = Callable[[list[VideoFrame]], Sequence[Any]]


class SinkMode(str, Enum):
    """How ``on_prediction`` is called (Roboflow's rules): ``SEQUENTIAL`` once per frame;
    ``BATCH`` once per batch with lists aligned to source ids (``None`` where a source had no
    frame); ``ADAPTIVE`` sequential for one source, batch for several."""

    ADAPTIVE = "adaptive"
    BATCH = "batch"
    SEQUENTIAL = "sequential"


class PipelineSinkError(RuntimeError):
    """Raised by ``join()`` when ``stop_on_sink_error`` stopped the pipeline."""


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _env_bool(name: str, default: bool) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


_warned: set[str] = set()


def _warn_once(name: str, message: str) -> None:
    if name not in _warned:
        _warned.add(name)
        logger.warning(message)


def _is_file_reference(reference: str | int) -> bool:
    return isinstance(reference, str) and not reference.lower().startswith(STREAM_PREFIXES)


def _check_references(references: Sequence[Any]) -> list[str | int]:
    checked: list[str | int] = []
    for reference in references:
        if isinstance(reference, bool) or not isinstance(reference, (str, int, os.PathLike)):
            raise TypeError(f"a video reference is a path, URL or webcam index, got {type(reference).__name__}")
        value = reference if isinstance(reference, int) else os.fspath(reference)
        if _is_file_reference(value) and not os.path.exists(value):
            raise SourceNotFoundError(f"video file {value!r} does not exist")
        checked.append(value)
    return checked


def _source_up(source: VideoSource) -> bool:
    """Connected and delivering (not ended, not reconnecting, not paused)."""
    state = getattr(source, "is_producing", None)
    if callable(state):
        return bool(state())
    return source.is_alive


class InferencePipeline:
    """Runs a model (or any ``on_video_frame`` function) over one or more video sources and hands
    the results to ``on_prediction``. Build it with ``init`` or ``init_with_custom_logic``."""

    def __init__(
        self,
        sources: list[VideoSource],
        on_video_frame: InferenceHandler,
        on_prediction: SinkHandler | None,
        on_pipeline_start: Callable[[], None] | None = None,
        on_pipeline_end: Callable[[], None] | None = None,
        status_update_handlers: Sequence[Callable[[StatusUpdate], None]] = (),
        watchdog: Any = None,
        max_fps: float | None = None,
        batch_collection_timeout: float | None = None,
        sink_mode: SinkMode = SinkMode.ADAPTIVE,
        predictions_queue_size: int = PREDICTIONS_QUEUE_SIZE,
        inference_workers: int = 1,
        max_batch_size: int | None = None,
        sink_queue_policy: str | None = None,
        stop_on_sink_error: bool = False,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        release_sinks: bool = True,
        tracker: TrackerFactory | None = None,
    ) -> None:
        self._sources = sources
        self._release_sinks = release_sinks
        self._trackers = SourceTrackers(tracker) if tracker is not None else None
        self._on_video_frame = on_video_frame
        self._on_prediction = on_prediction
        self._on_pipeline_start = on_pipeline_start
        self._on_pipeline_end = on_pipeline_end
        self._handlers = list(status_update_handlers)
        self._watchdog = watchdog
        self._max_fps = max_fps
        self._live_ids = {s.source_id for s in sources if not _is_file_reference(s.reference) or s.options.realtime}
        all_files = not self._live_ids
        self._batch_window = batch_collection_timeout
        if batch_collection_timeout is None and not all_files:
            self._batch_window = LIVE_BATCH_WINDOW
        self._sink_mode = SinkMode(sink_mode)
        self._sink_queue = SinkQueue(
            predictions_queue_size, sink_queue_policy or ("block" if all_files else "drop_oldest")
        )
        self._workers_count = max(int(inference_workers), 1)
        self._batches: queue.Queue[Any] = queue.Queue(maxsize=self._workers_count)
        self._idle_workers = threading.Semaphore(self._workers_count)
        self._max_batch_size = max_batch_size
        self._stop_on_sink_error = stop_on_sink_error
        self._metrics_port = metrics_port
        self._metrics_host = metrics_host
        self._metrics_server: MetricsServer | None = None
        self._stop = threading.Event()
        self._frame_event = threading.Event()
        self._state_lock = threading.Lock()
        self._started = False
        self._ended_pipeline = False
        self._reorder: ReorderBuffer[Any] = ReorderBuffer()
        self._reorder_lock = threading.Lock()
        self._workers_left = self._workers_count
        self._threads: list[threading.Thread] = []
        self._dispatch_thread: threading.Thread | None = None
        self.metrics_store = PipelineMetrics()
        self.frames_inferred = 0
        self.frames_dispatched = 0
        self.dispatch_errors = 0
        self.inference_error: BaseException | None = None
        self.sink_error: BaseException | None = None
        self.model: Any = None  # set by init(): the loaded model
        self._model_lease: ModelLease[Any] | None = None  # set by init(): held until the pipeline ends
        self.inference_parameters: InferenceParameters | None = None
        for source in sources:
            if hasattr(source, "add_frame_listener"):
                source.add_frame_listener(self._frame_event.set)
            if self._trackers is not None and hasattr(source, "add_status_handler"):
                source.add_status_handler(self._reset_tracker_on_reconnect)

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def init(
        cls,
        video_reference: VideoReferences,
        model_id: str,
        on_prediction: SinkHandler | None = None,
        api_key: str | None = None,
        max_fps: float | None = None,
        watchdog: Any = None,
        status_update_handlers: list[Callable[[StatusUpdate], None]] | None = None,
        source_buffer_filling_strategy: BufferFillingStrategy | str | None = None,
        source_buffer_consumption_strategy: BufferConsumptionStrategy | str | None = None,
        class_agnostic_nms: bool | None = None,
        confidence: float | None = None,
        iou_threshold: float | None = None,
        max_candidates: int | None = None,
        max_detections: int | None = None,
        mask_decode_mode: str | None = "accurate",
        tradeoff_factor: float | None = 0.0,
        active_learning_enabled: bool | None = None,
        video_source_properties: dict[str, float] | list[dict[str, float] | None] | None = None,
        active_learning_target_dataset: str | None = None,
        batch_collection_timeout: float | None = None,
        video_processing_mode: str | None = None,
        max_staleness: float | None = None,
        sink_mode: SinkMode | str = SinkMode.ADAPTIVE,
        predictions_queue_size: int = PREDICTIONS_QUEUE_SIZE,
        decoding_buffer_size: int = DEFAULT_BUFFER_SIZE,
        exec_session_id: str | None = None,
        *,
        inference_workers: int | None = None,
        class_filter: list[str] | None = None,
        stop_on_sink_error: bool = False,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        sink_queue_policy: str | None = None,
        source_options: SourceOptions | None = None,
        realtime: bool = False,
        release_sinks: bool = True,
        tracker: TrackerFactory | None = None,
    ) -> InferencePipeline:
        """A pipeline running ``model_id`` on ``video_reference`` (a file, URL, webcam index or a
        list of them), with Roboflow's parameters in Roboflow's order.

        The model is loaded here, so a wrong id or broken model raises from ``init``; a missing
        video file raises ``SourceNotFoundError`` here too. Post-processing defaults follow
        Roboflow (and its environment variables): ``confidence`` 0.4, ``iou_threshold`` 0.3,
        ``max_candidates`` 3000, ``max_detections`` 300, per-class NMS. Parameters that have no
        meaning here (active learning, mask decoding, usage tracking) are accepted and warned
        about once.

        framepipe's own keyword-only parameters: ``inference_workers`` (default on CPU: two, each
        with half of the cores, for files; one with all of them, for live sources),
        ``class_filter``, ``stop_on_sink_error`` (a raising ``on_prediction`` stops the pipeline
        and ``join()`` raises), ``metrics_port`` (serve
        ``/metrics`` and ``/healthz`` on ``metrics_host``), ``sink_queue_policy`` (``"block"``
        or ``"drop_oldest"``; default: block for files, drop for live sources), ``source_options``
        (timeouts, reconnection, RTSP transport, decoder threads: ``SourceOptions``),
        ``realtime`` (play files at their own frame rate, like cameras), ``release_sinks``
        (call ``release()`` on a sink object given as ``on_prediction`` when the pipeline ends)
        and ``tracker`` (a factory of trackers, e.g. ``lambda: ByteTrackTracker()``: each source
        gets its own, reset when the source reconnects; tracked detections get ``tracker_id``).
        """
        references = list(video_reference) if isinstance(video_reference, (list, tuple)) else [video_reference]
        if active_learning_enabled:
            _warn_once("active_learning", "active learning is a Roboflow platform feature; framepipe ignores it")
        if active_learning_target_dataset is not None:
            _warn_once("active_learning_target", "active_learning_target_dataset is ignored by framepipe")
        if mask_decode_mode not in (None, "accurate") or tradeoff_factor not in (None, 0.0):
            _warn_once("mask_decode", "mask_decode_mode and tradeoff_factor apply to segmentation models; ignored")
        live = realtime or any(not _is_file_reference(r) for r in _check_references(references))
        workers = plan_workers(inference_workers, live=live)
        lease = acquire_model(model_id, api_key=api_key, workload="latency" if live else "throughput")
        model = lease.model
        parameters = InferenceParameters.from_env(
            confidence=confidence,
            iou_threshold=iou_threshold,
            class_agnostic_nms=class_agnostic_nms,
            max_candidates=max_candidates,
            max_detections=max_detections,
            class_filter=tuple(class_filter) if class_filter is not None else None,
        )
        on_video_frame = model_handler(model, parameters)
        pipeline = cls._with_model_handler(
            lease,
            video_reference=video_reference,
            on_video_frame=on_video_frame,
            on_prediction=on_prediction,
            max_fps=max_fps,
            watchdog=watchdog,
            status_update_handlers=status_update_handlers,
            source_buffer_filling_strategy=source_buffer_filling_strategy,
            source_buffer_consumption_strategy=source_buffer_consumption_strategy,
            video_source_properties=video_source_properties,
            batch_collection_timeout=batch_collection_timeout,
            video_processing_mode=video_processing_mode,
            max_staleness=max_staleness,
            sink_mode=sink_mode,
            predictions_queue_size=predictions_queue_size,
            decoding_buffer_size=decoding_buffer_size,
            exec_session_id=exec_session_id,
            inference_workers=workers,
            stop_on_sink_error=stop_on_sink_error,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
            sink_queue_policy=sink_queue_policy,
            source_options=source_options,
            realtime=realtime,
            release_sinks=release_sinks,
            tracker=tracker,
        )
        pipeline.model = model
        pipeline.inference_parameters = parameters
        return pipeline

    @classmethod
    def _with_model_handler(cls, lease: ModelLease[Model], **arguments: Any) -> InferencePipeline:
        """``init_with_custom_logic`` for a model's handler: the pipeline holds the model's lease
        until it ends (a failed construction gives it back at once)."""
        try:
            pipeline = cls.init_with_custom_logic(**arguments)
        except BaseException:
            lease.release()
            raise
        pipeline._model_lease = lease
        return pipeline

    @classmethod
    def init_with_custom_logic(
        cls,
        video_reference: VideoReferences,
        on_video_frame: InferenceHandler,
        on_prediction: SinkHandler | None = None,
        on_pipeline_start: Callable[[], None] | None = None,
        on_pipeline_end: Callable[[], None] | None = None,
        max_fps: float | None = None,
        watchdog: Any = None,
        status_update_handlers: list[Callable[[StatusUpdate], None]] | None = None,
        source_buffer_filling_strategy: BufferFillingStrategy | str | None = None,
        source_buffer_consumption_strategy: BufferConsumptionStrategy | str | None = None,
        video_source_properties: dict[str, float] | list[dict[str, float] | None] | None = None,
        batch_collection_timeout: float | None = None,
        video_processing_mode: str | None = None,
        max_staleness: float | None = None,
        sink_mode: SinkMode | str = SinkMode.ADAPTIVE,
        predictions_queue_size: int = PREDICTIONS_QUEUE_SIZE,
        decoding_buffer_size: int = DEFAULT_BUFFER_SIZE,
        exec_session_id: str | None = None,
        allow_tensor_frames: bool = False,
        *,
        inference_workers: int = 1,
        max_batch_size: int | None = None,
        stop_on_sink_error: bool = False,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        sink_queue_policy: str | None = None,
        source_options: SourceOptions | None = None,
        realtime: bool = False,
        release_sinks: bool = True,
        tracker: TrackerFactory | None = None,
    ) -> InferencePipeline:
        """A pipeline whose ``on_video_frame(frames: list[VideoFrame])`` returns one prediction
        per frame, in order; those go to ``on_prediction`` as with ``init``. One inference worker
        by default (``on_video_frame`` need not be thread-safe); more with ``inference_workers``."""
        references = list(video_reference) if isinstance(video_reference, (list, tuple)) else [video_reference]
        if not references:
            raise ValueError("video_reference is an empty list: give at least one source")
        checked = _check_references(references)
        for name, value in (
            ("video_processing_mode", video_processing_mode),
            ("max_staleness", max_staleness),
            ("exec_session_id", exec_session_id),
            ("video_source_properties", video_source_properties),
        ):
            if value is not None:
                _warn_once(name, f"{name} is accepted for Roboflow compatibility and has no effect in this version")
        if allow_tensor_frames:
            _warn_once("allow_tensor_frames", "allow_tensor_frames is ignored: frames are numpy arrays")
        handlers = list(status_update_handlers or [])
        if watchdog is not None and hasattr(watchdog, "on_status_update"):
            handlers.append(watchdog.on_status_update)
        options = source_options or SourceOptions()
        if realtime:
            options = dataclasses.replace(options, realtime=True)
        sources = [
            VideoSource(
                reference,
                source_id=index,
                buffer_size=decoding_buffer_size,
                buffer_filling_strategy=source_buffer_filling_strategy,
                buffer_consumption_strategy=source_buffer_consumption_strategy,
                status_update_handlers=handlers,
                options=options,
            )
            for index, reference in enumerate(checked)
        ]
        if watchdog is not None and hasattr(watchdog, "register_video_sources"):
            watchdog.register_video_sources(sources)
        return cls(
            sources,
            on_video_frame,
            on_prediction,
            on_pipeline_start=on_pipeline_start,
            on_pipeline_end=on_pipeline_end,
            status_update_handlers=handlers,
            watchdog=watchdog,
            max_fps=max_fps,
            batch_collection_timeout=batch_collection_timeout,
            sink_mode=SinkMode(sink_mode),
            predictions_queue_size=predictions_queue_size,
            inference_workers=inference_workers,
            max_batch_size=max_batch_size,
            sink_queue_policy=sink_queue_policy,
            stop_on_sink_error=stop_on_sink_error,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
            release_sinks=release_sinks,
            tracker=tracker,
        )

    @property
    def sources(self) -> list[VideoSource]:
        return list(self._sources)

    def is_running(self) -> bool:
        """Whether any pipeline thread (collector, workers, dispatcher) is still working."""
        return any(t is not None and t.is_alive() for t in [*self._threads, self._dispatch_thread])

    @property
    def inference_workers(self) -> int:
        return self._workers_count

    @property
    def metrics_url(self) -> str | None:
        """``http://host:port`` of the metrics endpoint while it runs."""
        return self._metrics_server.url if self._metrics_server is not None else None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self, use_main_thread: bool = True) -> None:
        """Open every source (errors such as ``InvalidVideoError`` raise here), start decoding and
        inference, then dispatch results: on this thread until the end with ``use_main_thread``,
        else on a background thread (and return at once)."""
        with self._state_lock:
            if self._started:
                raise PipelineStateError("this pipeline was already started; build a new one to run again")
            self._started = True
        try:
            for source in self._sources:
                source.start()
            if self._metrics_port is not None:
                from framepipe.pipeline.metrics_server import MetricsServer  # http.server only when asked

                self._metrics_server = MetricsServer(
                    lambda: prometheus_text(self.metrics(), self.metrics_store),
                    self.health,
                    self._metrics_port,
                    self._metrics_host,
                )
                self._metrics_server.start()
        except BaseException:
            for source in self._sources:
                source.terminate(wait=True)
            raise
        self._emit("INFERENCE_THREAD_STARTED", UpdateSeverity.INFO)
        self._threads = [threading.Thread(target=self._collect_loop, name="framepipe-collector")]
        self._threads += [
            threading.Thread(target=self._worker_loop, name=f"framepipe-inference-{i}")
            for i in range(self._workers_count)
        ]
        for thread in self._threads:
            thread.start()
        try:
            if self._on_pipeline_start is not None:
                self._on_pipeline_start()
            if use_main_thread:
                self._dispatch_loop()
                return
        except BaseException:  # Ctrl-C on the dispatching thread, or a failing on_pipeline_start
            self.terminate()
            raise
        else:
            self._dispatch_thread = threading.Thread(target=self._dispatch_loop, name="framepipe-dispatch")
            self._dispatch_thread.start()

    def terminate(self) -> None:
        """Stop everything soon: sources stop decoding, queued frames and results are dropped.
        Returns at once; safe to call twice and from inside ``on_prediction``."""
        self._stop.set()
        self._frame_event.set()
        for source in self._sources:
            source.terminate(wait=False)
        self._drain_batches()
        self._sink_queue.clear()
        self._sink_queue.close()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the pipeline to finish (end of every source, or ``terminate()``), then call
        ``on_pipeline_end``. Raises ``PipelineSinkError`` when ``stop_on_sink_error`` stopped it."""
        current = threading.current_thread()
        if current is self._dispatch_thread or current in self._threads:
            raise PipelineStateError(
                "join() called from a pipeline thread (e.g. inside on_prediction) would wait forever"
            )
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(deadline - time.monotonic(), 0.0)

        for thread in [*self._threads, self._dispatch_thread]:
            if thread is not None:
                thread.join(left())
        for source in self._sources:
            # a decoder blocked on a stalled network read ends by itself within its read timeout
            source.join(left() if not self._stop.is_set() else min(left() or 1.0, 1.0))
        with self._state_lock:
            running = any(t is not None and t.is_alive() for t in [*self._threads, self._dispatch_thread])
            if running or self._ended_pipeline:
                return
            self._ended_pipeline = True
        if self._metrics_server is not None:
            self._metrics_server.stop()
        if self._model_lease is not None:
            self._model_lease.release()
        if self._on_pipeline_end is not None:
            self._on_pipeline_end()
        self._release_sink()
        if self.sink_error is not None and self._stop_on_sink_error:
            raise PipelineSinkError(f"on_prediction raised and stop_on_sink_error is set: {self.sink_error}") from (
                self.sink_error
            )

    def _release_sink(self) -> None:
        """Finish the sink's files: ``on_prediction`` that is a sink object with ``release()``, or
        a bound method of one (``VideoFileSink.on_prediction``), is released when the pipeline ends."""
        if not self._release_sinks or self._on_prediction is None:
            return
        owner = getattr(self._on_prediction, "__self__", self._on_prediction)
        release = getattr(owner, "release", None)
        if callable(release):
            try:
                release()
            except Exception:
                logger.exception("releasing the sink failed")

    # -- per-source control (Roboflow's names) -----------------------------------------------------
    def _each(self, source_id: int | None, action: str) -> None:
        chosen = self._sources if source_id is None else [s for s in self._sources if s.source_id == source_id]
        if not chosen:
            raise ValueError(f"no source with id {source_id}")
        for source in chosen:
            getattr(source, action)()

    def pause_stream(self, source_id: int | None = None) -> None:
        """Stop decoding ``source_id`` (all sources when ``None``) until ``resume_stream``."""
        self._each(source_id, "pause")

    def mute_stream(self, source_id: int | None = None) -> None:
        """Keep decoding ``source_id`` but drop every frame until ``resume_stream``."""
        self._each(source_id, "mute")

    def resume_stream(self, source_id: int | None = None) -> None:
        """Undo ``pause_stream`` / ``mute_stream``."""
        self._each(source_id, "resume")

    # -- status and metrics ------------------------------------------------------------------------
    def _emit(self, event_type: str, severity: UpdateSeverity, **payload: Any) -> None:
        update = StatusUpdate(datetime.now(), severity, event_type, payload, "inference_pipeline")
        for handler in self._handlers:
            try:
                handler(update)
            except Exception:
                logger.warning("status update handler failed on %s", event_type, exc_info=True)

    def _running(self) -> bool:
        return any(t.is_alive() for t in self._threads) and not self._stop.is_set()

    def metrics(self) -> MetricsSnapshot:
        """Counters and latencies so far: per source captured / processed / dispatched / dropped,
        and per stage (queue, batch, inference, sink, end to end) p50 / p95 / p99."""
        for source in self._sources:
            counters = self.metrics_store.counters(source.source_id)
            counters.captured = source.frames_decoded
            counters.dropped_by_source = source.frames_dropped
            counters.dropped_by_sink_queue = self._sink_queue.dropped.get(source.source_id, 0)
        return self.metrics_store.snapshot(
            {s.source_id: self._running() and _source_up(s) for s in self._sources},
            self._workers_count,
            len(self._sink_queue),
        )

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while the pipeline runs and at least one source is up."""
        up = {str(s.source_id): self._running() and _source_up(s) for s in self._sources}
        return any(up.values()), {"sources_up": up, "running": self._running()}

    # -- collector ---------------------------------------------------------------------------------
    def _collect_loop(self) -> None:
        collector = BatchCollector(
            self._sources,
            window=self._batch_window,
            max_batch_size=self._max_batch_size or len(self._sources),
            stop=self._stop,
            producing=_source_up,
            frame_event=self._frame_event,
            on_end=self._source_ended,
        )
        interval = 1.0 / self._max_fps if self._max_fps else 0.0
        next_due = time.monotonic()
        sequence = 0
        try:
            while not self._stop.is_set():
                # take frames only when a worker is free, so that no frame ages in a queue
                if not self._idle_workers.acquire(timeout=_POLL):
                    continue
                batch = collector.next_batch()
                if batch is None:
                    self._idle_workers.release()
                    break
                if interval:
                    delay = next_due - time.monotonic()
                    if delay > 0 and not any(c.frame.source_id in self._live_ids for c in batch):
                        self._stop.wait(delay)
                    elif delay > 0:
                        self._idle_workers.release()
                        continue  # live sources: drop this batch rather than fall behind
                    next_due = max(next_due + interval, time.monotonic())
                if self._put_batch((sequence, batch)):
                    sequence += 1
                else:
                    self._idle_workers.release()
        except Exception as error:
            self._fail(error, "collector")
        finally:
            for _ in range(self._workers_count):
                self._put_batch(_END, force=True)

    def _source_ended(self, source: Any) -> None:
        if source.error is not None:
            logger.error("source %s ended with an error: %s", source.source_id, source.error)

    def _put_batch(self, item: Any, force: bool = False) -> bool:
        while True:
            if self._stop.is_set() and not force:
                return False
            try:
                self._batches.put(item, timeout=_POLL)
                return True
            except queue.Full:
                if self._stop.is_set():
                    self._drain_batches()

    def _drain_batches(self) -> None:
        while True:
            try:
                item = self._batches.get_nowait()
            except queue.Empty:
                return
            if item is _END:  # keep end markers for the workers
                self._batches.put_nowait(item)
                return

    # -- workers -----------------------------------------------------------------------------------
    def _worker_loop(self) -> None:
        try:
            while True:
                item = self._batches.get()
                if item is _END:
                    break
                if self._stop.is_set():
                    continue
                sequence, batch = item
                try:
                    self._infer(sequence, batch)
                finally:
                    self._idle_workers.release()
        finally:
            with self._reorder_lock:
                self._workers_left -= 1
                last = self._workers_left == 0
            if last:
                self._sink_queue.put_final(_END)
                self._emit("INFERENCE_THREAD_FINISHED", UpdateSeverity.INFO)

    def _infer(self, sequence: int, batch: list[CollectedFrame]) -> None:
        frames = [c.frame for c in batch]
        started = time.monotonic()
        if self._watchdog is not None and hasattr(self._watchdog, "on_model_inference_started"):
            self._watchdog.on_model_inference_started(frames)
        try:
            predictions = list(self._on_video_frame(frames))
            if len(predictions) != len(frames):
                raise ValueError(f"on_video_frame returned {len(predictions)} predictions for {len(frames)} frames")
        except Exception as error:
            self._fail(error, "inference_thread")
            return
        finished = time.monotonic()
        if self._watchdog is not None and hasattr(self._watchdog, "on_model_prediction_ready"):
            self._watchdog.on_model_prediction_ready(frames)
        store = self.metrics_store
        store.count_batch(len(frames))
        store.throughput.tick(len(frames), finished)
        for collected in batch:
            source_id = collected.frame.source_id or 0
            store.observe(source_id, "queue", collected.queued)
            store.observe(source_id, "batch", started - collected.taken_at)
            store.observe(source_id, "inference", finished - started)
        self._emit(
            "INFERENCE_COMPLETED",
            UpdateSeverity.DEBUG,
            frames_ids=[f.frame_id for f in frames],
            sources_id=[f.source_id for f in frames],
        )
        with self._reorder_lock:  # results leave in batch order, whichever worker finished first
            self.frames_inferred += len(frames)
            for frame in frames:
                store.counters(frame.source_id or 0).processed += 1
            for due in self._reorder.push(sequence, (predictions, frames)):
                self._enqueue_result(due)

    def _enqueue_result(self, result: tuple[list[Any], list[VideoFrame]]) -> None:
        source_ids = [f.source_id or 0 for f in result[1]]
        while not self._stop.is_set():
            if self._sink_queue.put(result, source_ids, timeout=_POLL):
                return

    def _fail(self, error: BaseException, context: str) -> None:
        if self.inference_error is None:
            self.inference_error = error
        logger.error("%s failed; the pipeline stops: %s", context, error, exc_info=error)
        self._emit(
            "INFERENCE_ERROR",
            UpdateSeverity.ERROR,
            error_type=type(error).__name__,
            error_message=str(error),
            error_context=context,
        )
        self.terminate()

    # -- dispatch ----------------------------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        batch_mode = self._sink_mode is SinkMode.BATCH or (
            self._sink_mode is SinkMode.ADAPTIVE and len(self._sources) > 1
        )
        while True:
            try:
                item = self._sink_queue.get(timeout=_POLL)
            except TimeoutError:
                if self._stop.is_set() and not any(t.is_alive() for t in self._threads):
                    break
                continue
            if item is _END:
                break
            if self._stop.is_set():
                continue  # terminated: results still queued are not delivered
            predictions, frames = item
            if self._trackers is not None:  # in frame order, per source
                predictions = [self._trackers.apply(p, f) for p, f in zip(predictions, frames, strict=True)]
            predictions = [to_payload(p) for p in predictions]  # Roboflow's JSON, made once per frame
            if self._on_prediction is None:
                self._delivered(frames, 0.0)
                continue
            if batch_mode:
                by_source: list[Any] = [None] * len(self._sources)
                frame_by_source: list[VideoFrame | None] = [None] * len(self._sources)
                for prediction, frame in zip(predictions, frames, strict=True):
                    by_source[frame.source_id or 0] = prediction
                    frame_by_source[frame.source_id or 0] = frame
                self._call_sink(by_source, frame_by_source, frames)
            else:
                for prediction, frame in zip(predictions, frames, strict=True):
                    self._call_sink(prediction, frame, [frame])
        self._stop.set()
        for source in self._sources:
            source.terminate(wait=False)

    def _reset_tracker_on_reconnect(self, update: StatusUpdate) -> None:
        if update.event_type == "CONNECTED" and self._trackers is not None:
            source_id, first = update.payload.get("source_id"), update.payload.get("next_frame_id", 0)
            if isinstance(source_id, int):
                self._trackers.reset(source_id, from_frame_id=int(first))

    def _delivered(self, frames: list[VideoFrame], sink_seconds: float) -> None:
        for frame in frames:
            source_id = frame.source_id or 0
            self.metrics_store.observe(source_id, "sink", sink_seconds)
            self.metrics_store.counters(source_id).dispatched += 1
        self.frames_dispatched += len(frames)

    def _call_sink(self, predictions: Any, frames: Any, delivered: list[VideoFrame]) -> None:
        assert self._on_prediction is not None
        called = datetime.now()
        for frame in delivered:
            self.metrics_store.observe(
                frame.source_id or 0, "end_to_end", (called - frame.frame_timestamp).total_seconds()
            )
        started = time.monotonic()
        try:
            self._on_prediction(predictions, frames)
        except Exception as error:
            self.dispatch_errors += 1
            for frame in delivered:
                self.metrics_store.counters(frame.source_id or 0).sink_errors += 1
            where = ", ".join(f"source {f.source_id} frame {f.frame_id}" for f in delivered)
            logger.exception(
                "on_prediction raised on %s; %s", where, "stopping" if self._stop_on_sink_error else "going on"
            )
            self._emit(
                "INFERENCE_RESULTS_DISPATCHING_ERROR",
                UpdateSeverity.ERROR,
                error_type=type(error).__name__,
                error_message=str(error),
                error_context="inference_results_dispatching",
                frames=[(f.source_id, f.frame_id) for f in delivered],
            )
            if self._stop_on_sink_error:
                self.sink_error = error
                self.terminate()
        finally:
            self._delivered(delivered, time.monotonic() - started)

    def __repr__(self) -> str:
        references = ", ".join(redact(s.reference) for s in self._sources)
        return f"InferencePipeline(sources=[{references}], workers={self._workers_count}, started={self._started})"
