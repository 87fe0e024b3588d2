"""The ``on_video_frame`` handler that runs a model for a pipeline: the frames of a batch go to the
model's batching executor (shared with every other caller of the model) and come back as typed
predictions, one per frame; the dispatcher turns them into Roboflow's JSON for ``on_prediction``.

Example:
    >>> from framepipe.models import InferenceParameters, get_model
    >>> from framepipe.pipeline.handlers import model_handler
    >>> handler = model_handler(get_model("framepipe-shapes/1"), InferenceParameters())
"""

from __future__ import annotations

from collections.abc import Callable

from framepipe.models import InferenceParameters, Model
from framepipe.predictions import FramePrediction
from framepipe.sources.entities import VideoFrame


def model_handler(model: Model, parameters: InferenceParameters) -> Callable[[list[VideoFrame]], list[FramePrediction]]:
    """A handler that predicts ``model`` with ``parameters`` on a batch of frames."""
    executor = model.executor

    def on_video_frame(frames: list[VideoFrame]) -> list[FramePrediction]:
        return executor.infer([frame.image for frame in frames], parameters)

    return on_video_frame
