"""``InferencePipeline``: sources, inference and sinks on their own threads, joined by bounded
queues.

Example:
    >>> from framepipe.pipeline import InferencePipeline, SinkMode
    >>> SinkMode("batch") is SinkMode.BATCH
    True
"""

from framepipe.pipeline.inference_pipeline import PREDICTIONS_QUEUE_SIZE, InferencePipeline, SinkMode

__all__ = ["PREDICTIONS_QUEUE_SIZE", "InferencePipeline", "SinkMode"]
