"""A pipeline's settings as grouped values: where its frames come from, how they are batched,
how results queue for the sinks, metrics, tracking and the dispatch policy.

Roboflow's flat parameters are mapped onto these once, in ``InferencePipeline.init`` and
``init_with_custom_logic``; environment defaults (``VIDEO_SOURCE_BUFFER_SIZE``,
``INFERENCE_PIPELINE_PREDICTIONS_QUEUE_SIZE``, ``FRAMEPIPE_MAX_QUEUED_BYTES``) are read by the
``from_env`` constructors, that is when a pipeline is built, never at import.

Example:
    >>> from framepipe.pipeline.config import Batching, PipelineConfig, SinkQueueConfig
    >>> config = PipelineConfig(batching=Batching(window=0.02), sink_queue=SinkQueueConfig.from_env(env={}))
    >>> config.sink_queue.size, config.batching.window, config.dispatch.sink_mode.value
    (16, 0.02, 'adaptive')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from framepipe._internal.env import env_int
from framepipe.pipeline.sink_queue import POLICIES
from framepipe.pipeline.tracking import TrackerFactory
from framepipe.sources import BufferConsumptionStrategy, BufferFillingStrategy, SourceOptions
from framepipe.sources.video_source import default_buffer_size

__all__ = [
    "DEFAULT_MAX_QUEUED_BYTES",
    "LIVE_BATCH_WINDOW",
    "PREDICTIONS_QUEUE_SIZE",
    "Batching",
    "DispatchConfig",
    "MetricsConfig",
    "PipelineConfig",
    "SinkMode",
    "SinkQueueConfig",
    "SourcesConfig",
    "TrackingConfig",
]

PREDICTIONS_QUEUE_SIZE = 16
"""Results waiting for a sink. Roboflow queues 512 (a gigabyte of 720p frames behind a slow
sink); 16 is enough to absorb sink jitter. ``INFERENCE_PIPELINE_PREDICTIONS_QUEUE_SIZE``
overrides it, as in Roboflow."""

DEFAULT_MAX_QUEUED_BYTES = 256 * 2**20
"""Frames waiting in one sink queue, in bytes (about 90 frames of 720p); one result always fits.
``FRAMEPIPE_MAX_QUEUED_BYTES`` overrides it."""

LIVE_BATCH_WINDOW = 0.02
"""Default ``batch_collection_timeout`` when any source is live: a batch waits at most 20 ms
for the other cameras after its first frame."""


class SinkMode(str, Enum):
    """How ``on_prediction`` is called (Roboflow's rules): ``SEQUENTIAL`` once per frame;
    ``BATCH`` once per batch with lists aligned to source ids (``None`` where a source had no
    frame); ``ADAPTIVE`` sequential for one source, batch for several."""

    ADAPTIVE = "adaptive"
    BATCH = "batch"
    SEQUENTIAL = "sequential"


@dataclass(frozen=True)
class SourcesConfig:
    """How each source decodes: its buffer (``None``: ``VIDEO_SOURCE_BUFFER_SIZE`` or 2), Roboflow's
    buffering strategies (``None``: by kind of source) and framepipe's ``SourceOptions``."""

    buffer_size: int | None = None
    filling: BufferFillingStrategy | str | None = None
    consumption: BufferConsumptionStrategy | str | None = None
    options: SourceOptions = field(default_factory=SourceOptions)

    def resolved_buffer_size(self) -> int:
        return self.buffer_size if self.buffer_size is not None else default_buffer_size()


@dataclass(frozen=True)
class Batching:
    """``window``: how long a batch waits for the other sources after its first frame (``None``:
    20 ms when any source is live, else until every producing source gave one); at most
    ``max_batch_size`` frames (``None``: one per source); ``inference_workers`` batches in
    parallel; at most ``max_fps`` batches a second (live sources drop and count the rest)."""

    window: float | None = None
    max_batch_size: int | None = None
    inference_workers: int = 1
    max_fps: float | None = None


@dataclass(frozen=True)
class SinkQueueConfig:
    """Each sink queue: ``size`` results and ``max_bytes`` of frames at most; ``policy`` ``"block"``
    or ``"drop_oldest"`` for every source, or ``None``: per source (files block, live sources drop
    their oldest results)."""

    size: int = PREDICTIONS_QUEUE_SIZE
    max_bytes: int | None = DEFAULT_MAX_QUEUED_BYTES
    policy: str | None = None

    def __post_init__(self) -> None:
        if self.policy is not None and self.policy not in POLICIES:
            raise ValueError(f"sink_queue_policy must be one of {POLICIES} or None, got {self.policy!r}")
        if self.size < 1:
            raise ValueError(f"predictions_queue_size must be at least 1, got {self.size}")

    @classmethod
    def from_env(
        cls,
        size: int | None = None,
        max_bytes: int | None = None,
        policy: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> SinkQueueConfig:
        """``None`` values come from the environment, else the defaults."""
        return cls(
            size=size if size is not None else env_int("INFERENCE_PIPELINE_PREDICTIONS_QUEUE_SIZE", 16, env),
            max_bytes=max_bytes
            if max_bytes is not None
            else env_int("FRAMEPIPE_MAX_QUEUED_BYTES", DEFAULT_MAX_QUEUED_BYTES, env),
            policy=policy,
        )

    def policies(self, live_ids: set[int], source_ids: list[int]) -> dict[int, str]:
        """The policy of each source."""
        if self.policy is not None:
            return dict.fromkeys(source_ids, self.policy)
        return {i: "drop_oldest" if i in live_ids else "block" for i in source_ids}


@dataclass(frozen=True)
class MetricsConfig:
    """Serve ``/metrics`` and ``/healthz`` on ``host:port`` (``None``: not served)."""

    port: int | None = None
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class TrackingConfig:
    """One tracker per source, made by ``factory`` (``None``: no tracking)."""

    factory: TrackerFactory | None = None


@dataclass(frozen=True)
class DispatchConfig:
    """How results reach the sinks: ``sink_mode``; ``stop_on_sink_error`` (a raising sink stops
    the pipeline and ``join()`` raises); ``release_sinks`` when the pipeline ends; a raising sink's
    later failures are summed up every ``error_log_interval`` seconds."""

    sink_mode: SinkMode = SinkMode.ADAPTIVE
    stop_on_sink_error: bool = False
    release_sinks: bool = True
    error_log_interval: float = 5.0


@dataclass(frozen=True)
class PipelineConfig:
    """Everything the engine needs to know besides its sources, handler and sink."""

    batching: Batching = field(default_factory=Batching)
    sink_queue: SinkQueueConfig = field(default_factory=SinkQueueConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    dispatch: DispatchConfig = field(default_factory=DispatchConfig)
