"""``InferencePipeline``: sources, a batch collector, inference workers and sink dispatchers on
their own threads, joined by bounded queues; status updates, watchdogs, metrics; pipelines
described as data (``PipelineSpec``).

Example:
    >>> from framepipe.pipeline import InferencePipeline, PipelineState, SinkMode
    >>> SinkMode("batch") is SinkMode.BATCH, PipelineState.CREATED.value
    (True, 'created')
"""

from framepipe.errors import PipelineSinkError
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
from framepipe.pipeline.engine import PipelineEngine, PipelineState
from framepipe.pipeline.inference_pipeline import InferencePipeline
from framepipe.pipeline.metrics import MetricsSnapshot
from framepipe.pipeline.spec import PipelineSpec
from framepipe.pipeline.watchdog import (
    BasePipelineWatchDog,
    LatencyMonitorReport,
    NullPipelineWatchdog,
    PipelineStateReport,
    PipelineWatchDog,
)

__all__ = [
    "PREDICTIONS_QUEUE_SIZE",
    "BasePipelineWatchDog",
    "Batching",
    "DispatchConfig",
    "InferencePipeline",
    "LatencyMonitorReport",
    "MetricsConfig",
    "MetricsSnapshot",
    "NullPipelineWatchdog",
    "PipelineConfig",
    "PipelineEngine",
    "PipelineSinkError",
    "PipelineSpec",
    "PipelineState",
    "PipelineStateReport",
    "PipelineWatchDog",
    "SinkMode",
    "SinkQueueConfig",
    "SourcesConfig",
    "TrackingConfig",
]
