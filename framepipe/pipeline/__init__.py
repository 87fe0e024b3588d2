"""``InferencePipeline``: sources, a batch collector, inference workers and a sink dispatcher on
their own threads, joined by bounded queues; status updates, watchdogs and metrics.

Example:
    >>> from framepipe.pipeline import InferencePipeline, SinkMode
    >>> SinkMode("batch") is SinkMode.BATCH
    True
"""

from framepipe.pipeline.inference_pipeline import (
    PREDICTIONS_QUEUE_SIZE,
    InferencePipeline,
    PipelineSinkError,
    SinkMode,
)
from framepipe.pipeline.metrics import MetricsSnapshot
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
    "InferencePipeline",
    "LatencyMonitorReport",
    "MetricsSnapshot",
    "NullPipelineWatchdog",
    "PipelineSinkError",
    "PipelineStateReport",
    "PipelineWatchDog",
    "SinkMode",
]
