"""``InferencePipeline``: sources → inference thread → sink dispatcher, with Roboflow's API.

Threads (all named ``framepipe-*``): one decoder per source fills a bounded buffer; the inference
thread collects one frame per source, runs the model and puts the results on a bounded
predictions queue; the dispatcher (the caller's thread with ``start()``, or its own thread with
``start(use_main_thread=False)``) hands each frame and its predictions to ``on_prediction``. Every
queue is bounded, so memory stays flat however slow a sink is: a file is never read ahead more
than a few frames.

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

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from framepipe.errors import PipelineStateError, SourceNotFoundError
from framepipe.models import InferenceParameters, get_model
from framepipe.sources import (
    DEFAULT_BUFFER_SIZE,
    BufferConsumptionStrategy,
    BufferFillingStrategy,
    StatusUpdate,
    UpdateSeverity,
    VideoFrame,
    VideoSource,
)
from framepipe.sources.readers import STREAM_PREFIXES, redact

logger = logging.getLogger("framepipe.pipeline")

PREDICTIONS_QUEUE_SIZE = int(os.environ.get("INFERENCE_PIPELINE_PREDICTIONS_QUEUE_SIZE", "16"))
"""Results waiting for the sink. Roboflow queues 512 (a gigabyte of 720p frames behind a slow
sink); 16 is enough to absorb sink jitter. Overridden by Roboflow's environment variable."""

_POLL = 0.05
_END = object()

VideoReference = str | int | os.PathLike[str]
SinkHandler = Callable[..., None]
InferenceHandler = Callable[[list[VideoFrame]], Sequence[Any]]


class SinkMode(str, Enum):
    """How ``on_prediction`` is called (Roboflow's rules): ``SEQUENTIAL`` once per frame;
    ``BATCH`` once per batch with lists aligned to source ids (``None`` where a source had no
    frame); ``ADAPTIVE`` sequential for one source, batch for several."""

    ADAPTIVE = "adaptive"
    BATCH = "batch"
    SEQUENTIAL = "sequential"


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _env_bool(name: str, default: bool) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


_warned: set[str] = set()


def _warn_once(name: str, message: str) -> None:
    if name not in _warned:
        _warned.add(name)
        logger.warning(message)


def _check_references(references: list[VideoReference]) -> list[str | int]:
    checked: list[str | int] = []
    for reference in references:
        if isinstance(reference, bool) or not isinstance(reference, (str, int, os.PathLike)):
            raise TypeError(f"a video reference is a path, URL or webcam index, got {type(reference).__name__}")
        value = reference if isinstance(reference, int) else os.fspath(reference)
        if isinstance(value, str) and not value.lower().startswith(STREAM_PREFIXES) and not os.path.exists(value):
            raise SourceNotFoundError(f"video file {value!r} does not exist")
        checked.append(value)
    return checked


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
    ) -> None:
        self._sources = sources
        self._on_video_frame = on_video_frame
        self._on_prediction = on_prediction
        self._on_pipeline_start = on_pipeline_start
        self._on_pipeline_end = on_pipeline_end
        self._handlers = list(status_update_handlers)
        self._watchdog = watchdog
        self._max_fps = max_fps
        self._batch_timeout = batch_collection_timeout
        self._sink_mode = SinkMode(sink_mode)
        self._predictions: queue.Queue[Any] = queue.Queue(maxsize=max(int(predictions_queue_size), 1))
        self._stop = threading.Event()
        self._state_lock = threading.Lock()
        self._started = False
        self._ended_pipeline = False
        self._inference_thread: threading.Thread | None = None
        self._dispatch_thread: threading.Thread | None = None
        self._ended_sources: set[int] = set()
        self.frames_inferred = 0
        self.frames_dispatched = 0
        self.dispatch_errors = 0
        self.inference_error: BaseException | None = None
        self.model: Any = None  # set by init(): the loaded model
        self.inference_parameters: InferenceParameters | None = None

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def init(
        cls,
        video_reference: VideoReference | list[VideoReference],
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
    ) -> InferencePipeline:
        """A pipeline running ``model_id`` on ``video_reference`` (a file, URL, webcam index or a
        list of them), with Roboflow's parameters in Roboflow's order.

        The model is loaded here, so a wrong id or broken model raises from ``init``; a missing
        video file raises ``SourceNotFoundError`` here too. Post-processing defaults follow
        Roboflow (and its environment variables): ``confidence`` 0.4, ``iou_threshold`` 0.3,
        ``max_candidates`` 3000, ``max_detections`` 300, per-class NMS. Parameters that have no
        meaning here (active learning, mask decoding, usage tracking) are accepted and warned
        about once.
        """
        references = video_reference if isinstance(video_reference, list) else [video_reference]
        _check_references(references)
        if active_learning_enabled:
            _warn_once("active_learning", "active learning is a Roboflow platform feature; framepipe ignores it")
        if active_learning_target_dataset is not None:
            _warn_once("active_learning_target", "active_learning_target_dataset is ignored by framepipe")
        if mask_decode_mode not in (None, "accurate") or tradeoff_factor not in (None, 0.0):
            _warn_once("mask_decode", "mask_decode_mode and tradeoff_factor apply to segmentation models; ignored")
        model = get_model(model_id, api_key=api_key)
        parameters = InferenceParameters(
            confidence=confidence if confidence is not None else _env_float("CONFIDENCE", 0.4),
            iou_threshold=iou_threshold if iou_threshold is not None else _env_float("IOU_THRESHOLD", 0.3),
            class_agnostic_nms=(
                class_agnostic_nms if class_agnostic_nms is not None else _env_bool("CLASS_AGNOSTIC_NMS", False)
            ),
            max_candidates=max_candidates if max_candidates is not None else int(_env_float("MAX_CANDIDATES", 3000)),
            max_detections=max_detections if max_detections is not None else int(_env_float("MAX_DETECTIONS", 300)),
        )

        def on_video_frame(frames: list[VideoFrame]) -> list[dict[str, Any]]:
            tensor, geometries = model.preprocess([f.image for f in frames])
            return model.postprocess(model.run(tensor), geometries, parameters)

        pipeline = cls.init_with_custom_logic(
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
        )
        pipeline.model = model
        pipeline.inference_parameters = parameters
        return pipeline

    @classmethod
    def init_with_custom_logic(
        cls,
        video_reference: VideoReference | list[VideoReference],
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
    ) -> InferencePipeline:
        """A pipeline whose ``on_video_frame(frames: list[VideoFrame])`` returns one prediction
        per frame, in order; those go to ``on_prediction`` as with ``init``."""
        references = video_reference if isinstance(video_reference, list) else [video_reference]
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
        sources = [
            VideoSource(
                reference,
                source_id=index,
                buffer_size=decoding_buffer_size,
                buffer_filling_strategy=source_buffer_filling_strategy,
                buffer_consumption_strategy=source_buffer_consumption_strategy,
                status_update_handlers=handlers,
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
        )

    @property
    def sources(self) -> list[VideoSource]:
        return list(self._sources)

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
        except BaseException:
            for source in self._sources:
                source.terminate(wait=True)
            raise
        self._inference_thread = threading.Thread(target=self._infer_loop, name="framepipe-inference")
        self._inference_thread.start()
        if self._on_pipeline_start is not None:
            self._on_pipeline_start()
        if use_main_thread:
            self._dispatch_loop()
        else:
            self._dispatch_thread = threading.Thread(target=self._dispatch_loop, name="framepipe-dispatch")
            self._dispatch_thread.start()

    def terminate(self) -> None:
        """Stop everything soon: sources stop decoding, queued frames and results are dropped.
        Returns at once; safe to call twice and from inside ``on_prediction``."""
        self._stop.set()
        for source in self._sources:
            source.terminate(wait=False)
        self._drain_predictions()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the pipeline to finish (end of every source, or ``terminate()``), then call
        ``on_pipeline_end``."""
        current = threading.current_thread()
        if current in (self._dispatch_thread, self._inference_thread):
            raise PipelineStateError(
                "join() called from a pipeline thread (e.g. inside on_prediction) would wait forever"
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in (self._inference_thread, self._dispatch_thread):
            if thread is not None:
                thread.join(None if deadline is None else max(deadline - time.monotonic(), 0))
        for source in self._sources:
            source.join(None if deadline is None else max(deadline - time.monotonic(), 0))
        with self._state_lock:
            finished = not any(t is not None and t.is_alive() for t in (self._inference_thread, self._dispatch_thread))
            if not finished or self._ended_pipeline:
                return
            self._ended_pipeline = True
        if self._on_pipeline_end is not None:
            self._on_pipeline_end()

    # -- status ------------------------------------------------------------------------------------
    def _emit(self, event_type: str, severity: UpdateSeverity, context: str, **payload: Any) -> None:
        update = StatusUpdate(datetime.now(), severity, event_type, payload, context)
        for handler in self._handlers:
            try:
                handler(update)
            except Exception:
                logger.warning("status update handler failed on %s", event_type, exc_info=True)

    # -- inference thread --------------------------------------------------------------------------
    def _collect(self) -> list[VideoFrame] | None:
        """One frame from each live source (waiting up to ``batch_collection_timeout`` in all);
        ``None`` when every source has ended."""
        live = [s for s in self._sources if s.source_id not in self._ended_sources]
        if not live:
            return None
        deadline = None if self._batch_timeout is None else time.monotonic() + self._batch_timeout
        frames: list[VideoFrame] = []
        for source in live:
            while not self._stop.is_set():
                wait = _POLL if deadline is None else min(_POLL, deadline - time.monotonic())
                if wait <= 0:
                    break
                try:
                    frame = source.read_frame(timeout=wait)
                except TimeoutError:
                    continue
                if frame is None:
                    self._ended_sources.add(source.source_id)
                    if source.error is not None:
                        logger.error("source %s ended with an error: %s", source.source_id, source.error)
                else:
                    frames.append(frame)
                break
        return frames

    def _infer_loop(self) -> None:
        self._emit("INFERENCE_THREAD_STARTED", UpdateSeverity.INFO, "inference_pipeline")
        interval = 1.0 / self._max_fps if self._max_fps else 0.0
        next_due = time.monotonic()
        try:
            while not self._stop.is_set():
                frames = self._collect()
                if frames is None:
                    break
                if not frames:
                    continue
                if interval:
                    delay = next_due - time.monotonic()
                    if delay > 0 and all(f.comes_from_video_file for f in frames):
                        time.sleep(delay)
                    elif delay > 0:
                        continue  # live sources: drop this batch rather than fall behind
                    next_due = max(next_due + interval, time.monotonic())
                if self._watchdog is not None and hasattr(self._watchdog, "on_model_inference_started"):
                    self._watchdog.on_model_inference_started(frames)
                predictions = list(self._on_video_frame(frames))
                if len(predictions) != len(frames):
                    raise ValueError(f"on_video_frame returned {len(predictions)} predictions for {len(frames)} frames")
                if self._watchdog is not None and hasattr(self._watchdog, "on_model_prediction_ready"):
                    self._watchdog.on_model_prediction_ready(frames)
                self.frames_inferred += len(frames)
                self._emit(
                    "INFERENCE_COMPLETED",
                    UpdateSeverity.DEBUG,
                    "inference_pipeline",
                    frames_ids=[f.frame_id for f in frames],
                    sources_id=[f.source_id for f in frames],
                )
                self._put((predictions, frames))
        except Exception as error:
            self.inference_error = error
            logger.exception("inference failed; the pipeline stops")
            self._emit(
                "INFERENCE_ERROR",
                UpdateSeverity.ERROR,
                "inference_pipeline",
                error_type=type(error).__name__,
                error_message=str(error),
                error_context="inference_thread",
            )
        finally:
            for source in self._sources:
                source.terminate(wait=False)
            self._put(_END, force=True)
            self._emit("INFERENCE_THREAD_FINISHED", UpdateSeverity.INFO, "inference_pipeline")

    def _put(self, item: Any, force: bool = False) -> None:
        while True:
            if self._stop.is_set() and not force:
                return
            try:
                self._predictions.put(item, timeout=_POLL)
                return
            except queue.Full:
                if self._stop.is_set():
                    self._drain_predictions()

    def _drain_predictions(self) -> None:
        while True:
            try:
                item = self._predictions.get_nowait()
            except queue.Empty:
                return
            if item is _END:
                self._predictions.put_nowait(item)
                return

    # -- dispatch ----------------------------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        batch_mode = self._sink_mode is SinkMode.BATCH or (
            self._sink_mode is SinkMode.ADAPTIVE and len(self._sources) > 1
        )
        while True:
            item = self._predictions.get()
            if item is _END:
                break
            if self._stop.is_set():
                continue  # terminated: results still queued are not delivered
            predictions, frames = item
            if self._on_prediction is None:
                self.frames_dispatched += len(frames)
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

    def _call_sink(self, predictions: Any, frames: Any, delivered: list[VideoFrame]) -> None:
        assert self._on_prediction is not None
        try:
            self._on_prediction(predictions, frames)
        except Exception as error:
            self.dispatch_errors += 1
            where = ", ".join(f"source {f.source_id} frame {f.frame_id}" for f in delivered)
            logger.exception("on_prediction raised on %s; the pipeline goes on", where)
            self._emit(
                "INFERENCE_RESULTS_DISPATCHING_ERROR",
                UpdateSeverity.ERROR,
                "inference_pipeline",
                error_type=type(error).__name__,
                error_message=str(error),
                error_context="inference_results_dispatching",
                frames=[(f.source_id, f.frame_id) for f in delivered],
            )
        finally:
            self.frames_dispatched += len(delivered)

    def __repr__(self) -> str:
        references = ", ".join(redact(s.reference) for s in self._sources)
        return f"InferencePipeline(sources=[{references}], started={self._started})"
