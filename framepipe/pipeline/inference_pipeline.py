"""``InferencePipeline``: Roboflow Inference's API over framepipe's engine.

This module is the facade: Roboflow's constructors, in Roboflow's order, with their docstrings,
map their flat parameters once onto grouped configuration values (``config.py``) and build the
sources; the engine (``engine.py``) runs them. ``init`` loads the model through ``handlers.py``.

Example:
    >>> from framepipe import InferencePipeline
    >>> def on_prediction(predictions, video_frame):
    ...     print(video_frame.frame_id, len(predictions["predictions"]))
    >>> with InferencePipeline.init(  # doctest: +SKIP
    ...     video_reference="clip.mp4", model_id="framepipe-shapes/1", on_prediction=on_prediction
    ... ) as pipeline:
    ...     pipeline.start()
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from framepipe.errors import PipelineSinkError, SourceNotFoundError
from framepipe.pipeline.config import (
    PREDICTIONS_QUEUE_SIZE,
    Batching,
    DispatchConfig,
    MetricsConfig,
    PipelineConfig,
    SinkMode,
    SinkQueueConfig,
    SourcesConfig,
    TrackingConfig,
)
from framepipe.pipeline.engine import PipelineEngine
from framepipe.pipeline.handlers import InferenceHandler, load_model_handler
from framepipe.pipeline.sources import is_live
from framepipe.pipeline.tracking import TrackerFactory
from framepipe.sources import (
    BufferConsumptionStrategy,
    BufferFillingStrategy,
    SourceOptions,
    StatusUpdate,
    VideoSource,
)

__all__ = ["PREDICTIONS_QUEUE_SIZE", "InferencePipeline", "PipelineSinkError", "SinkMode"]

logger = logging.getLogger("framepipe.pipeline")

VideoReference = str | int | os.PathLike[str]
VideoReferences = VideoReference | Sequence[VideoReference]
SinkHandler = Callable[..., None]
StatusHandler = Callable[[StatusUpdate], None]

_warned: set[str] = set()


def _warn_once(name: str, message: str) -> None:
    if name not in _warned:
        _warned.add(name)
        logger.warning(message)


def _references(video_reference: VideoReferences) -> list[str | int]:
    """The references as a checked list: a missing video file raises ``SourceNotFoundError`` now."""
    references = list(video_reference) if isinstance(video_reference, (list, tuple)) else [video_reference]
    if not references:
        raise ValueError("video_reference is an empty list: give at least one source")
    checked: list[str | int] = []
    for reference in references:
        if isinstance(reference, bool) or not isinstance(reference, (str, int, os.PathLike)):
            raise TypeError(f"a video reference is a path, URL or webcam index, got {type(reference).__name__}")
        value = reference if isinstance(reference, int) else os.fspath(reference)
        if not is_live(value) and not os.path.exists(value):
            raise SourceNotFoundError(f"video file {value!r} does not exist")
        checked.append(value)
    return checked


def _ignored(**values: Any) -> None:
    for name, value in values.items():
        if value is not None:
            _warn_once(name, f"{name} is accepted for Roboflow compatibility and has no effect in this version")


def _sources_config(
    buffer_size: int | None,
    filling: BufferFillingStrategy | str | None,
    consumption: BufferConsumptionStrategy | str | None,
    options: SourceOptions | None,
    realtime: bool,
) -> SourcesConfig:
    options = options or SourceOptions()
    return SourcesConfig(
        buffer_size, filling, consumption, dataclasses.replace(options, realtime=True) if realtime else options
    )


class InferencePipeline(PipelineEngine):
    """Runs a model (or any ``on_video_frame`` function) over one or more video sources and hands
    the results to ``on_prediction``. Build it with ``init`` or ``init_with_custom_logic``; use it
    as a context manager to terminate, join and release it on the way out."""

    model: Any = None
    """The loaded model (``init`` only)."""
    inference_parameters: Any = None
    """Its post-processing parameters (``init`` only)."""

    @classmethod
    def init(
        cls,
        video_reference: VideoReferences,
        model_id: str,
        on_prediction: SinkHandler | None = None,
        api_key: str | None = None,
        max_fps: float | None = None,
        watchdog: Any = None,
        status_update_handlers: list[StatusHandler] | None = None,
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
        predictions_queue_size: int | None = None,
        decoding_buffer_size: int | None = None,
        exec_session_id: str | None = None,
        *,
        inference_workers: int | None = None,
        class_filter: list[str] | None = None,
        stop_on_sink_error: bool = False,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        sink_queue_policy: str | None = None,
        max_queued_bytes: int | None = None,
        source_options: SourceOptions | None = None,
        realtime: bool = False,
        release_sinks: bool = True,
        tracker: TrackerFactory | None = None,
        keypoint_confidence: float | None = None,
    ) -> InferencePipeline:
        """A pipeline running ``model_id`` on ``video_reference`` (a file, URL, webcam index or a
        list of them), with Roboflow's parameters in Roboflow's order.

        The model is loaded here, so a wrong id or broken model raises from ``init``; a missing
        video file raises ``SourceNotFoundError`` here too. Post-processing defaults follow
        Roboflow (and its environment variables): ``confidence`` 0.4, ``iou_threshold`` 0.3,
        ``max_candidates`` 3000, ``max_detections`` 300, per-class NMS. Parameters that have no
        meaning here (active learning, usage tracking) are accepted and warned about once.
        ``mask_decode_mode`` and ``tradeoff_factor`` go to a segmentation model, and framepipe's
        ``keypoint_confidence`` to a keypoint model (``confidence`` is a classifier's threshold);
        given to a model of another task, a value other than the default is warned about once.
        ``predictions_queue_size`` (default 16, env ``INFERENCE_PIPELINE_PREDICTIONS_QUEUE_SIZE``)
        and ``decoding_buffer_size`` (default 2, env ``VIDEO_SOURCE_BUFFER_SIZE``) read their
        environment variables here.

        framepipe's own keyword-only parameters: ``inference_workers`` (default on CPU: two, each
        with half of the cores, for files; one with all of them, for live sources),
        ``class_filter``, ``stop_on_sink_error`` (a raising ``on_prediction`` stops the pipeline
        and ``join()`` raises), ``metrics_port`` (serve ``/metrics`` and ``/healthz`` on
        ``metrics_host``), ``sink_queue_policy`` (``"block"`` or ``"drop_oldest"`` for every
        source; default per source: files block, live sources drop their oldest results),
        ``max_queued_bytes`` (frames waiting in each sink queue, default 256 MiB, env
        ``FRAMEPIPE_MAX_QUEUED_BYTES``), ``source_options`` (timeouts, reconnection, RTSP
        transport, decoder threads: ``SourceOptions``), ``realtime`` (play files at their own
        frame rate, like cameras), ``release_sinks`` (release the sink when the pipeline ends: a
        sink object, the object of a bound method such as ``VideoFileSink.on_prediction``, or the
        children of ``partial(multi_sink, sinks=[...])``) and ``tracker`` (a factory of trackers,
        e.g. ``lambda: ByteTrackTracker()``: each source gets its own, reset when the source
        reconnects; tracked detections get ``tracker_id``), ``keypoint_confidence`` (see above).
        """
        references = _references(video_reference)
        if active_learning_enabled:
            _warn_once("active_learning", "active learning is a Roboflow platform feature; framepipe ignores it")
        if active_learning_target_dataset is not None:
            _warn_once("active_learning_target", "active_learning_target_dataset is ignored by framepipe")
        _ignored(
            video_processing_mode=video_processing_mode,
            max_staleness=max_staleness,
            exec_session_id=exec_session_id,
            video_source_properties=video_source_properties,
        )
        loaded = load_model_handler(
            model_id,
            live=realtime or any(is_live(r) for r in references),
            api_key=api_key,
            inference_workers=inference_workers,
            confidence=confidence,
            iou_threshold=iou_threshold,
            class_agnostic_nms=class_agnostic_nms,
            max_candidates=max_candidates,
            max_detections=max_detections,
            class_filter=class_filter,
            task_parameters={
                "mask_decode_mode": mask_decode_mode,
                "tradeoff_factor": tradeoff_factor,
                "keypoint_confidence": keypoint_confidence,
            },
        )
        config = PipelineConfig(
            batching=Batching(batch_collection_timeout, None, loaded.inference_workers, max_fps),
            sink_queue=SinkQueueConfig.from_env(predictions_queue_size, max_queued_bytes, sink_queue_policy),
            metrics=MetricsConfig(metrics_port, metrics_host),
            tracking=TrackingConfig(tracker),
            dispatch=DispatchConfig(SinkMode(sink_mode), stop_on_sink_error, release_sinks),
        )
        sources = _sources_config(
            decoding_buffer_size,
            source_buffer_filling_strategy,
            source_buffer_consumption_strategy,
            source_options,
            realtime,
        )
        try:
            pipeline = cls.build(
                references, sources, loaded.on_video_frame, on_prediction, config, watchdog, status_update_handlers
            )
        except BaseException:
            loaded.lease.release()
            raise
        pipeline.model, pipeline.inference_parameters = loaded.model, loaded.parameters
        pipeline.hold_until_end(loaded.lease.release)
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
        status_update_handlers: list[StatusHandler] | None = None,
        source_buffer_filling_strategy: BufferFillingStrategy | str | None = None,
        source_buffer_consumption_strategy: BufferConsumptionStrategy | str | None = None,
        video_source_properties: dict[str, float] | list[dict[str, float] | None] | None = None,
        batch_collection_timeout: float | None = None,
        video_processing_mode: str | None = None,
        max_staleness: float | None = None,
        sink_mode: SinkMode | str = SinkMode.ADAPTIVE,
        predictions_queue_size: int | None = None,
        decoding_buffer_size: int | None = None,
        exec_session_id: str | None = None,
        allow_tensor_frames: bool = False,
        *,
        inference_workers: int = 1,
        max_batch_size: int | None = None,
        stop_on_sink_error: bool = False,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        sink_queue_policy: str | None = None,
        max_queued_bytes: int | None = None,
        source_options: SourceOptions | None = None,
        realtime: bool = False,
        release_sinks: bool = True,
        tracker: TrackerFactory | None = None,
    ) -> InferencePipeline:
        """A pipeline whose ``on_video_frame(frames: list[VideoFrame])`` returns one prediction
        per frame, in order; those go to ``on_prediction`` as with ``init`` (same parameters).
        One inference worker by default (``on_video_frame`` need not be thread-safe); more with
        ``inference_workers``; ``max_batch_size`` caps the frames per call."""
        references = _references(video_reference)
        _ignored(
            video_processing_mode=video_processing_mode,
            max_staleness=max_staleness,
            exec_session_id=exec_session_id,
            video_source_properties=video_source_properties,
        )
        if allow_tensor_frames:
            _warn_once("allow_tensor_frames", "allow_tensor_frames is ignored: frames are numpy arrays")
        config = PipelineConfig(
            batching=Batching(batch_collection_timeout, max_batch_size, inference_workers, max_fps),
            sink_queue=SinkQueueConfig.from_env(predictions_queue_size, max_queued_bytes, sink_queue_policy),
            metrics=MetricsConfig(metrics_port, metrics_host),
            tracking=TrackingConfig(tracker),
            dispatch=DispatchConfig(SinkMode(sink_mode), stop_on_sink_error, release_sinks),
        )
        sources = _sources_config(
            decoding_buffer_size,
            source_buffer_filling_strategy,
            source_buffer_consumption_strategy,
            source_options,
            realtime,
        )
        return cls.build(
            references,
            sources,
            on_video_frame,
            on_prediction,
            config,
            watchdog,
            status_update_handlers,
            on_pipeline_start=on_pipeline_start,
            on_pipeline_end=on_pipeline_end,
        )

    @classmethod
    def build(
        cls,
        references: Sequence[str | int],
        sources: SourcesConfig,
        on_video_frame: InferenceHandler,
        on_prediction: SinkHandler | None,
        config: PipelineConfig,
        watchdog: Any = None,
        status_update_handlers: Sequence[StatusHandler] | None = None,
        on_pipeline_start: Callable[[], None] | None = None,
        on_pipeline_end: Callable[[], None] | None = None,
    ) -> InferencePipeline:
        """A pipeline from configuration values: one ``VideoSource`` per reference."""
        handlers = list(status_update_handlers or [])
        if watchdog is not None and hasattr(watchdog, "on_status_update"):
            handlers.append(watchdog.on_status_update)
        buffer_size = sources.resolved_buffer_size()
        video_sources = [
            VideoSource(
                reference,
                source_id=index,
                buffer_size=buffer_size,
                buffer_filling_strategy=sources.filling,
                buffer_consumption_strategy=sources.consumption,
                status_update_handlers=handlers,
                options=sources.options,
            )
            for index, reference in enumerate(references)
        ]
        if watchdog is not None and hasattr(watchdog, "register_video_sources"):
            watchdog.register_video_sources(video_sources)
        return cls(
            video_sources,
            on_video_frame,
            on_prediction,
            config,
            on_pipeline_start=on_pipeline_start,
            on_pipeline_end=on_pipeline_end,
            status_update_handlers=handlers,
            watchdog=watchdog,
        )

    def __enter__(self) -> InferencePipeline:
        return self
